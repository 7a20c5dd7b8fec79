//! Call state per shard, keyed by Call-ID: which trunk is on each side, where each side is,
//! and how far the dialog got. Bounded (limits::CALLS_PER_SHARD_MAX) and expiring
//! (limits::CALL_IDLE_MAX, limits::CALL_LINGER).

use super::cdr::{CallRecord, EndedBy};
use super::index::Index;
use super::transaction::{Id, Slab};
use crate::routing::TrunkId;
use crate::trunks::TrunkState;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// INVITE forwarded, no dialog yet.
    Trying,
    /// A provisional with a To tag came back.
    Early,
    /// 2xx to the INVITE.
    Confirmed,
    /// Ended (BYE answered, INVITE failed or cancelled); lingers to absorb stragglers.
    Terminated,
}

/// One call. Kept small: a million of these must fit in well under a gigabyte.
#[derive(Debug)]
pub struct Call {
    pub call_id: Box<[u8]>,
    /// `call_id`'s hash in the Calls index (set by `Calls::insert`, for its removal).
    pub call_id_hash: u64,
    pub state: CallState,
    pub ingress: Option<TrunkId>,
    pub egress: Option<TrunkId>,
    /// Where the caller's requests came from (the calling trunk's address).
    pub caller: SocketAddr,
    /// Where we sent the INVITE (the called trunk's address).
    pub callee: SocketAddr,
    pub created: Instant,
    pub last_activity: Instant,
    /// When it is forgotten: CALL_LINGER after it ended; while it is up, the idle expiry last
    /// computed (its one wheel entry comes back at least every CALL_LINGER to check).
    pub expiry: Instant,
    /// Hash of the caller's From tag: tells which side an in-dialog request comes from.
    pub caller_tag: u64,
    /// The calling number's user part as the caller sent it and as the callee's trunk sees
    /// it (both empty when it was not translated). Swapped back toward the caller.
    pub from_user_orig: Box<[u8]>,
    pub from_user_new: Box<[u8]>,
    /// The swap above is of the whole name-addr of From (an anonymized From, RFC 3323),
    /// not of its user part.
    pub from_whole: bool,
    /// The concurrent-call slot the answered call holds on its egress trunk.
    pub admitted: Option<Arc<TrunkState>>,
    /// The ingress slot the call holds on the trunk it came from (`max_calls_in`), until
    /// it ends.
    pub admitted_in: Option<Arc<TrunkState>>,
    /// Its maximum duration and the BYEs that end it (`max_duration_s`; `None`: no cap).
    pub limit: Option<Box<super::proxy::CallLimit>>,
    /// Its call detail record, filled in as the call goes (attempts, answer, end).
    pub record: Option<Box<CallRecord>>,
    /// Which side sent the BYE, once one did.
    pub ended_by: Option<EndedBy>,
}

#[derive(Default)]
pub struct Calls {
    slab: Slab<Call>,
    index: Index,
}

impl Calls {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    pub fn find(&self, call_id: &[u8]) -> Option<Id> {
        let slab = &self.slab;
        self.index.get(self.index.hash(call_id), call_id, |id| {
            slab.get(id).map(|c| &*c.call_id)
        })
    }

    pub fn get(&self, id: Id) -> Option<&Call> {
        self.slab.get(id)
    }

    pub fn get_mut(&mut self, id: Id) -> Option<&mut Call> {
        self.slab.get_mut(id)
    }

    /// Insert a new call; the caller checks the table bound first.
    pub fn insert(&mut self, mut call: Call) -> Id {
        let hash = self.index.hash(&call.call_id);
        call.call_id_hash = hash;
        let id = self.slab.insert(call);
        let slab = &self.slab;
        let key = slab.get(id).map(|c| &*c.call_id).unwrap_or_default();
        let old = self
            .index
            .insert(hash, key, id, |id| slab.get(id).map(|c| &*c.call_id));
        if let Some(old) = old {
            // A previous call with the same Call-ID: it is replaced.
            if let Some(c) = self.slab.remove(old) {
                if let Some(s) = &c.admitted {
                    s.ended();
                }
                if let Some(s) = &c.admitted_in {
                    s.ended_in();
                }
            }
        }
        id
    }

    pub fn remove(&mut self, id: Id) {
        if let Some(call) = self.slab.remove(id) {
            if let Some(s) = &call.admitted {
                s.ended();
            }
            if let Some(s) = &call.admitted_in {
                s.ended_in();
            }
            self.index.remove(call.call_id_hash, id);
        }
    }
}
