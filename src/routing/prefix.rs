//! The compiled prefix table: a byte trie in one flat array of fixed-size nodes, built once
//! from every route's prefixes. Walking a called number down the trie visits, in order of
//! increasing length, every node whose prefix the number starts with; each node holds the
//! routes that listed exactly that prefix.
//!
//! Each node finds its child for the next byte without searching: the bytes used by any prefix
//! form a small alphabet (digits, `+`, `*`, `#`...), a node has a bitmap of the symbols it has
//! children for, its children are stored together in symbol order, and the child's position is
//! the number of bits set below the symbol's.
//!
//! Chains are compressed: a node that no prefix ends at and that has a single child is not
//! stored; its child carries the skipped bytes as a label (up to `LABEL_BYTES` inline, longer
//! chains use one node per `LABEL_BYTES + 1` bytes). In a table of a million prefixes most
//! prefixes end in a chain of their own below the last shared level, so a lookup touches about
//! one node per shared level plus one or two, and memory is about 32 bytes per node with fewer
//! nodes than prefixes' bytes. A prefix listed by one route keeps the route in its node; only
//! prefixes listed by several routes take 2 bytes per route in a side array.

use std::collections::VecDeque;

/// Longest prefix accepted, in bytes. E.164 numbers have at most 15 digits; with a `+` and a
/// carrier's routing or technical prefix (`#31#`, `D123`...) 32 leaves room. It also bounds the
/// number of trie nodes one lookup visits.
pub const PREFIX_BYTES_MAX: usize = 32;

/// Distinct bytes all prefixes together may use (the child bitmap has one bit per symbol).
/// Every printable ASCII character fits.
pub const SYMBOLS_MAX: usize = 128;

/// Bytes of a compressed chain stored in a node (what fills the node to 32 bytes).
const LABEL_BYTES: usize = 5;

/// `symbol[byte]` for bytes no prefix uses.
const NO_SYMBOL: u8 = u8::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    /// Bit `s` set: there is a child for symbol `s`.
    children: u128,
    /// Index of the child with the lowest symbol; the others follow in symbol order.
    first_child: u32,
    /// The routes that listed this prefix: with one route (the usual case) the route
    /// itself, in `entries[0]`, so a lookup reads nothing outside the nodes; with more, the
    /// index of the first in `PrefixTrie::entries` (low half, high half).
    entries: [u16; 2],
    entries_len: u16,
    /// The bytes between the parent's child byte and this node (a compressed chain).
    label_len: u8,
    label: [u8; LABEL_BYTES],
}

const _: () = assert!(std::mem::size_of::<Node>() == 32);

const EMPTY_NODE: Node = Node {
    children: 0,
    first_child: 0,
    entries: [0; 2],
    entries_len: 0,
    label_len: 0,
    label: [0; LABEL_BYTES],
};

/// Prefix -> routes, longest-match friendly.
#[derive(Debug)]
pub struct PrefixTrie {
    /// Byte -> symbol (`NO_SYMBOL` when no prefix uses the byte).
    symbol: [u8; 256],
    /// Node 0 is the root (the empty prefix).
    nodes: Vec<Node>,
    /// Route indices of the nodes listed by more than one route, grouped per node, each
    /// group in the order given at build time.
    entries: Vec<u16>,
    /// Number of (prefix, route) entries.
    len: usize,
}

impl PrefixTrie {
    /// Build from `(prefix, route)` pairs. Within one prefix, routes keep the order of `rank`
    /// (lower first); duplicate pairs collapse. Prefixes longer than `PREFIX_BYTES_MAX` must
    /// have been rejected by the caller (they are ignored here). Fails when the prefixes use
    /// more than `SYMBOLS_MAX` distinct bytes.
    pub fn build<P: AsRef<[u8]>>(
        mut pairs: Vec<(P, u16)>,
        rank: impl Fn(u16) -> u64,
    ) -> Result<PrefixTrie, String> {
        pairs.retain(|(p, _)| p.as_ref().len() <= PREFIX_BYTES_MAX);
        // A stable sort: it merges runs that are already sorted (a prefix file's prefixes
        // come in byte order) in linear time.
        pairs.sort_by(|(pa, ra), (pb, rb)| {
            pa.as_ref()
                .cmp(pb.as_ref())
                .then_with(|| rank(*ra).cmp(&rank(*rb)))
                .then(ra.cmp(rb))
        });
        pairs.dedup_by(|(pa, ra), (pb, rb)| ra == rb && pa.as_ref() == pb.as_ref());

        let mut used = [false; 256];
        for (p, _) in &pairs {
            for &b in p.as_ref() {
                used[b as usize] = true;
            }
        }
        let mut symbol = [NO_SYMBOL; 256];
        let bytes_used = (0..=u8::MAX).filter(|b| used[*b as usize]);
        for (n, b) in bytes_used.enumerate() {
            if n == SYMBOLS_MAX {
                return Err(format!(
                    "the prefixes use more than {SYMBOLS_MAX} different characters"
                ));
            }
            symbol[b as usize] = n as u8;
        }
        if u32::try_from(pairs.len()).is_err() {
            return Err(format!(
                "{} prefix entries; at most {}",
                pairs.len(),
                u32::MAX
            ));
        }

        let key = |i: usize| -> &[u8] { pairs.get(i).map_or(&[], |(p, _)| p.as_ref()) };
        let mut trie = PrefixTrie {
            symbol,
            // Usually fewer nodes than prefixes plus a quarter (chains are compressed).
            nodes: Vec::with_capacity(1 + pairs.len() + pairs.len() / 4),
            entries: Vec::new(),
            len: pairs.len(),
        };
        trie.nodes.push(EMPTY_NODE);
        // Work items: (node index, depth, range of `pairs` whose prefixes pass through it).
        // `depth` is the length of the node's prefix. In sorted order a node's own entries
        // (prefix length == depth) come first, and its children's ranges are contiguous and
        // in byte (hence symbol) order.
        // Breadth first, so each level's nodes are stored together: the upper levels, which
        // every lookup crosses, stay compact and cache-resident.
        // (u32 each: `pairs.len()` was checked, and nodes are fewer than 33 per pair.)
        let mut work: VecDeque<(u32, u32, u32, u32)> = VecDeque::new();
        work.push_back((0, 0, 0, pairs.len() as u32));
        while let Some((node, depth, start, end)) = work.pop_front() {
            let (node, depth) = (node as usize, depth as usize);
            let (start, end) = (start as usize, end as usize);
            let own = (start..end).take_while(|&i| key(i).len() == depth).count();
            let Ok(entries_len) = u16::try_from(own) else {
                return Err(format!(
                    "{own} routes list the same prefix; at most {}",
                    u16::MAX
                ));
            };
            let own_routes = pairs.get(start..start + own).unwrap_or(&[]);
            let entries = match own_routes {
                [(_, route)] => [*route, 0],
                _ => {
                    let at = trie.entries.len() as u32;
                    trie.entries.extend(own_routes.iter().map(|(_, r)| *r));
                    [at as u16, (at >> 16) as u16]
                }
            };

            let first_child = trie.nodes.len();
            let mut children = 0u128;
            let mut i = start + own;
            while i < end {
                let Some(&byte) = key(i).get(depth) else {
                    break;
                };
                let j = i
                    + (i..end)
                        .take_while(|&k| key(k).get(depth) == Some(&byte))
                        .count();
                // The chain below `byte` that every prefix of the group shares, without a
                // prefix ending inside it (the shortest would sort first, so checking the
                // first and the last of the group is enough).
                let (first, last) = (key(i), key(j - 1));
                let label_start = depth + 1;
                let mut e = label_start;
                while e - label_start < LABEL_BYTES
                    && first.len() > e
                    && first.get(e).is_some()
                    && first.get(e) == last.get(e)
                {
                    e += 1;
                }
                let mut child = EMPTY_NODE;
                let label = first.get(label_start..e).unwrap_or(&[]);
                child.label_len = label.len() as u8;
                if let Some(dst) = child.label.get_mut(..label.len()) {
                    dst.copy_from_slice(label);
                }
                children |= 1u128 << trie.symbol[byte as usize];
                work.push_back((trie.nodes.len() as u32, e as u32, i as u32, j as u32));
                trie.nodes.push(child);
                i = j;
            }
            if let Some(n) = trie.nodes.get_mut(node) {
                n.children = children;
                n.first_child = first_child as u32;
                n.entries = entries;
                n.entries_len = entries_len;
            }
        }
        if u32::try_from(trie.nodes.len()).is_err() {
            return Err(format!(
                "{} trie nodes; at most {}",
                trie.nodes.len(),
                u32::MAX
            ));
        }
        trie.nodes.shrink_to_fit();
        Ok(trie)
    }

    /// A trie with no prefixes.
    pub fn empty() -> PrefixTrie {
        PrefixTrie {
            symbol: [NO_SYMBOL; 256],
            nodes: vec![EMPTY_NODE],
            entries: Vec::new(),
            len: 0,
        }
    }

    fn entries_of<'a>(&'a self, node: &'a Node) -> &'a [u16] {
        if node.entries_len == 1 {
            return node.entries.get(..1).unwrap_or(&[]);
        }
        let [low, high] = node.entries;
        let at = (usize::from(high) << 16) | usize::from(low);
        self.entries
            .get(at..at + node.entries_len as usize)
            .unwrap_or(&[])
    }

    fn child(&self, node: &Node, byte: u8) -> Option<&Node> {
        let s = self.symbol[byte as usize];
        if s == NO_SYMBOL || (node.children >> s) & 1 == 0 {
            return None;
        }
        let below = (node.children & ((1u128 << s) - 1)).count_ones();
        self.nodes.get(node.first_child as usize + below as usize)
    }

    /// Visit every prefix of `key` that some route listed, shortest first, with its length
    /// and the routes that listed it. Never allocates.
    #[inline]
    pub fn walk<'a>(&'a self, key: &[u8], mut visit: impl FnMut(usize, &'a [u16])) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let mut depth = 0;
        loop {
            if node.entries_len > 0 {
                visit(depth, self.entries_of(node));
            }
            let Some(&byte) = key.get(depth) else {
                return;
            };
            let Some(next) = self.child(node, byte) else {
                return;
            };
            let len = next.label_len as usize;
            let label = next.label.get(..len).unwrap_or(&[]);
            if key.get(depth + 1..depth + 1 + len) != Some(label) {
                return;
            }
            node = next;
            depth += 1 + len;
        }
    }

    /// Number of (prefix, route) entries.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of nodes (for the benchmark note).
    pub fn nodes_len(&self) -> usize {
        self.nodes.len()
    }

    /// Approximate heap bytes held (for the benchmark note and `junction check`).
    pub fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>() + self.entries.capacity() * 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(t: &PrefixTrie, key: &[u8]) -> Vec<(usize, Vec<u16>)> {
        let mut out = Vec::new();
        t.walk(key, |d, e| out.push((d, e.to_vec())));
        out
    }

    #[test]
    fn walk_visits_every_listed_prefix_shortest_first() {
        let pairs = vec![
            (b"+1".to_vec(), 0),
            (b"+1212".to_vec(), 1),
            (b"".to_vec(), 2),
            (b"+1212".to_vec(), 3),
            (b"+44".to_vec(), 4),
            (b"+1212".to_vec(), 1),
        ];
        // Rank: route 3 before route 1.
        let t = PrefixTrie::build(pairs, |r| if r == 3 { 0 } else { 10 + u64::from(r) })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            collect(&t, b"+12125551234"),
            vec![(0, vec![2]), (2, vec![0]), (5, vec![3, 1])]
        );
        assert_eq!(collect(&t, b"+4420"), vec![(0, vec![2]), (3, vec![4])]);
        assert_eq!(collect(&t, b"+121"), vec![(0, vec![2]), (2, vec![0])]);
        assert_eq!(collect(&t, b""), vec![(0, vec![2])]);
        assert_eq!(collect(&t, b"alice"), vec![(0, vec![2])]);
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn compressed_chains_match_byte_for_byte() {
        // Long single-child chains (longer than one node's label), a prefix ending inside
        // what would otherwise be a chain, and keys that leave a chain half way.
        let pairs = vec![
            (b"+4420712345678".to_vec(), 0),
            (b"+44207".to_vec(), 1),
            (b"+442071234567890123456789".to_vec(), 2),
            (b"+4420799".to_vec(), 3),
        ];
        let t = PrefixTrie::build(pairs, u64::from).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            collect(&t, b"+44207123456789"),
            vec![(6, vec![1]), (14, vec![0])]
        );
        assert_eq!(
            collect(&t, b"+442071234567890123456789"),
            vec![(6, vec![1]), (14, vec![0]), (25, vec![2])]
        );
        assert_eq!(collect(&t, b"+4420712345"), vec![(6, vec![1])]);
        assert_eq!(collect(&t, b"+442071234567X"), vec![(6, vec![1])]);
        assert_eq!(
            collect(&t, b"+44207123456780123"),
            vec![(6, vec![1]), (14, vec![0])]
        );
        assert_eq!(collect(&t, b"+4420799"), vec![(6, vec![1]), (8, vec![3])]);
        assert_eq!(collect(&t, b"+4420"), vec![]);
        assert_eq!(collect(&t, b"+4520712345678"), vec![]);
        // Fewer nodes than bytes: the chains are compressed.
        assert!(t.nodes_len() < 12, "{} nodes", t.nodes_len());
    }

    #[test]
    fn agrees_with_starts_with_on_random_prefixes() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        let mut pairs: Vec<(Vec<u8>, u16)> = Vec::new();
        for r in 0..3000u16 {
            let len = next(12) as usize;
            let p: Vec<u8> = (0..len).map(|_| b'0' + next(3) as u8).collect();
            pairs.push((p, r % 7));
        }
        let t = PrefixTrie::build(pairs.clone(), u64::from).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..3000 {
            let len = next(16) as usize;
            let key: Vec<u8> = (0..len).map(|_| b'0' + next(3) as u8).collect();
            let mut want: Vec<(usize, Vec<u16>)> = Vec::new();
            for l in 0..=key.len() {
                let mut routes: Vec<u16> = pairs
                    .iter()
                    .filter(|(p, _)| p.as_slice() == &key[..l])
                    .map(|(_, r)| *r)
                    .collect();
                routes.sort_unstable();
                routes.dedup();
                if !routes.is_empty() {
                    want.push((l, routes));
                }
            }
            assert_eq!(
                collect(&t, &key),
                want,
                "{:?}",
                String::from_utf8_lossy(&key)
            );
        }
    }

    #[test]
    fn empty_trie_visits_nothing() {
        let t = PrefixTrie::build(Vec::<(Vec<u8>, u16)>::new(), |_| 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(collect(&t, b"+1212").is_empty());
        assert!(t.is_empty());
    }

    #[test]
    fn any_bytes_up_to_the_alphabet_limit() {
        // 128 distinct bytes ('x' and 0x80..=0xfe), non-ASCII included, build and match.
        let pairs: Vec<(Vec<u8>, u16)> = (0u8..127)
            .map(|b| (vec![b'x', 0x80 | b], b.into()))
            .collect();
        let t = PrefixTrie::build(pairs, |_| 0).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(collect(&t, &[b'x', 0xfe, b'1']), vec![(2, vec![126])]);
        assert_eq!(collect(&t, &[b'x', 0x80]), vec![(2, vec![0])]);
        assert_eq!(collect(&t, &[b'x', 0xc1]), vec![(2, vec![0x41])]);
        assert!(collect(&t, &[b'x', 0xff]).is_empty());
        assert!(collect(&t, b"x1").is_empty());
        // One more distinct byte is refused, not mis-stored.
        let pairs: Vec<(Vec<u8>, u16)> = (0u8..129).map(|b| (vec![b], 0)).collect();
        assert!(PrefixTrie::build(pairs, |_| 0).is_err());
    }
}
