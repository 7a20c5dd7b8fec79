//! The compiled prefix table: a byte trie in one flat array of fixed-size nodes, built once
//! from every route's prefixes. Walking a called number down the trie visits, in order of
//! increasing length, every node whose prefix the number starts with; each node holds the
//! routes that listed exactly that prefix.
//!
//! Each node finds its child for the next byte without searching: the bytes used by any prefix
//! form a small alphabet (digits, `+`, `*`, `#`...), a node has a bitmap of the symbols it has
//! children for, its children are stored together in symbol order, and the child's position is
//! the number of bits set below the symbol's. One node (32 bytes, one cache line) per byte of
//! the number, at most `PREFIX_BYTES_MAX + 1` of them; memory is 32 bytes per node plus
//! 2 bytes per (prefix, route) entry.

/// Longest prefix accepted, in bytes. E.164 numbers have at most 15 digits; with a `+` and a
/// carrier's routing or technical prefix (`#31#`, `D123`...) 32 leaves room. It also bounds the
/// number of trie nodes one lookup visits.
pub const PREFIX_BYTES_MAX: usize = 32;

/// Distinct bytes all prefixes together may use (the child bitmap has one bit per symbol).
/// Every printable ASCII character fits.
pub const SYMBOLS_MAX: usize = 128;

/// `symbol[byte]` for bytes no prefix uses.
const NO_SYMBOL: u8 = u8::MAX;

#[derive(Clone, Copy, Debug)]
struct Node {
    /// Bit `s` set: there is a child for symbol `s`.
    children: u128,
    /// Index of the child with the lowest symbol; the others follow in symbol order.
    first_child: u32,
    /// First route in `entries`, and how many.
    entries: u32,
    entries_len: u32,
}

const EMPTY_NODE: Node = Node {
    children: 0,
    first_child: 0,
    entries: 0,
    entries_len: 0,
};

/// Prefix -> routes, longest-match friendly.
#[derive(Debug)]
pub struct PrefixTrie {
    /// Byte -> symbol (`NO_SYMBOL` when no prefix uses the byte).
    symbol: [u8; 256],
    /// Node 0 is the root (the empty prefix).
    nodes: Vec<Node>,
    /// Route indices, grouped per node, each group in the order given at build time.
    entries: Vec<u16>,
}

impl PrefixTrie {
    /// Build from `(prefix, route)` pairs. Within one prefix, routes keep the order of `rank`
    /// (lower first); duplicate pairs collapse. Prefixes longer than `PREFIX_BYTES_MAX` must
    /// have been rejected by the caller (they are ignored here). Fails when the prefixes use
    /// more than `SYMBOLS_MAX` distinct bytes.
    pub fn build(
        mut pairs: Vec<(Vec<u8>, u16)>,
        rank: impl Fn(u16) -> u64,
    ) -> Result<PrefixTrie, String> {
        pairs.retain(|(p, _)| p.len() <= PREFIX_BYTES_MAX);
        pairs.sort_by(|(pa, ra), (pb, rb)| pa.cmp(pb).then(rank(*ra).cmp(&rank(*rb))));
        pairs.dedup();

        let mut used = [false; 256];
        for (p, _) in &pairs {
            for &b in p {
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

        let mut trie = PrefixTrie {
            symbol,
            nodes: vec![EMPTY_NODE],
            entries: Vec::with_capacity(pairs.len()),
        };
        // Work items: (node index, depth, range of `pairs` whose prefixes pass through it).
        // In sorted order a node's own entries (prefix length == depth) come first, and its
        // children's ranges are contiguous and in byte (hence symbol) order.
        let mut work: Vec<(usize, usize, usize, usize)> = vec![(0, 0, 0, pairs.len())];
        while let Some((node, depth, start, end)) = work.pop() {
            let group = &pairs[start..end];
            let own = group.iter().take_while(|(p, _)| p.len() == depth).count();
            let entries_at = trie.entries.len();
            trie.entries.extend(group[..own].iter().map(|(_, r)| *r));

            let first_child = trie.nodes.len();
            let mut children = 0u128;
            let mut i = start + own;
            while i < end {
                let byte = pairs[i].0[depth];
                let j = i + pairs[i..end]
                    .iter()
                    .take_while(|(p, _)| p[depth] == byte)
                    .count();
                children |= 1u128 << trie.symbol[byte as usize];
                work.push((trie.nodes.len(), depth + 1, i, j));
                trie.nodes.push(EMPTY_NODE);
                i = j;
            }
            if let Some(n) = trie.nodes.get_mut(node) {
                *n = Node {
                    children,
                    first_child: first_child as u32,
                    entries: entries_at as u32,
                    entries_len: own as u32,
                };
            }
        }
        Ok(trie)
    }

    /// A trie with no prefixes.
    pub fn empty() -> PrefixTrie {
        PrefixTrie {
            symbol: [NO_SYMBOL; 256],
            nodes: vec![EMPTY_NODE],
            entries: Vec::new(),
        }
    }

    fn entries_of(&self, node: &Node) -> &[u16] {
        let at = node.entries as usize;
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
            match self.child(node, byte) {
                Some(next) => node = next,
                None => return,
            }
            depth += 1;
        }
    }

    /// Number of (prefix, route) entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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
    fn empty_trie_visits_nothing() {
        let t = PrefixTrie::build(Vec::new(), |_| 0).unwrap_or_else(|e| panic!("{e}"));
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
