//! Loop detection (RFC 3261 16.3 item 4, RFC 5393 4.2): the branch of every request junction
//! routes by number ends with a hash of the request's routing state as received
//! (Request-URI, Call-ID, From and To tags, CSeq number). A request that arrives with a Via
//! junction wrote (its own sent-by and branch prefix) whose hash equals that of the request
//! now has looped: it gets 482 Loop Detected. One that comes back changed (a spiral: a
//! gateway that translated the number) is routed again; Max-Forwards still bounds it.
//!
//! Looped requests come back to the shard that routed them (the Call-ID picks the shard),
//! so the shard's own hash key serves. The check looks only at requests routed by number
//! (in-dialog requests follow their route set) and costs a search of their Via lines.

use super::{hex, Core};
use crate::sip::header::HeaderName;
use crate::sip::scan::{Message, StartLine};
use std::hash::BuildHasher;

/// How every branch junction writes begins (then the shard's boot value and number).
const BRANCH_HEAD: &[u8] = b";branch=z9hG4bKjn";

impl Core {
    /// The loop-detection hash of `msg`'s routing state (32 bits of the shard's keyed hash).
    pub(super) fn loop_hash(&self, buf: &[u8], msg: &Message) -> u32 {
        let ruri = match msg.start {
            StartLine::Request { uri, .. } => uri.get(buf),
            StartLine::Response { .. } => &[],
        };
        let from_tag = msg.from.tag.map_or(&[][..], |t| t.get(buf));
        let to_tag = msg.to.tag.map_or(&[][..], |t| t.get(buf));
        let h = self.hash_seed.hash_one((
            b"loop",
            ruri,
            msg.call_id.get(buf),
            from_tag,
            to_tag,
            msg.cseq,
        ));
        (h >> 32) as u32
    }

    /// Whether `msg` carries a Via junction wrote for a request with its routing state.
    pub(super) fn looped(&mut self, buf: &[u8], msg: &Message) -> bool {
        // "SIP/2.0/UDP <advertise>;branch=z9hG4bKjn": our own Via, as written.
        let mut ours = std::mem::take(&mut self.tmp);
        ours.clear();
        ours.extend_from_slice(b"SIP/2.0/UDP ");
        crate::sip::rewrite::write_hostport(&mut ours, self.config.advertise);
        ours.extend_from_slice(BRANCH_HEAD);
        // The hash of this request, written out the first time a Via of ours needs it.
        let mut want: Option<Vec<u8>> = None;
        let mut looped = false;
        for h in msg.headers().iter().filter(|h| h.name == HeaderName::Via) {
            let line = h.line.get(buf);
            let mut at = 0;
            while let Some(i) = line
                .get(at..)
                .and_then(|rest| memchr::memmem::find(rest, &ours))
            {
                let start = at + i + ours.len();
                at = start;
                let branch = line.get(start..).unwrap_or(&[]);
                let end = branch
                    .iter()
                    .position(|c| !c.is_ascii_alphanumeric() && *c != b'.')
                    .unwrap_or(branch.len());
                // boot+shard "." idx "." gen "." hash: the hash is the fourth part.
                let Some(hash) = branch
                    .get(..end)
                    .and_then(|b| b.split(|&c| c == b'.').nth(3))
                else {
                    continue;
                };
                let want = want.get_or_insert_with(|| {
                    let mut w = Vec::with_capacity(8);
                    hex(&mut w, u64::from(self.loop_hash(buf, msg)));
                    w
                });
                looped |= hash == &want[..];
            }
        }
        self.tmp = ours;
        looped
    }
}
