//! The compiled prefix table: a byte trie in flat arrays (no per-node allocation), built once
//! from every route's prefixes. Walking a called number down the trie visits, in order of
//! increasing length, every node whose prefix the number starts with; each node holds the
//! routes that listed exactly that prefix.
//!
//! Cost: a lookup is one child search per byte of the number (at most `PREFIX_BYTES_MAX`
//! steps); memory is about 12 bytes per node plus 5 bytes per edge plus 2 bytes per entry.

/// Longest prefix accepted, in bytes. E.164 numbers have at most 15 digits; with a `+` and a
/// carrier's routing or technical prefix (`#31#`, `D123`...) 32 leaves room. It also bounds the
/// number of trie nodes one lookup visits.
pub const PREFIX_BYTES_MAX: usize = 32;

#[derive(Clone, Copy, Debug)]
struct Node {
    /// First child edge in `edge_bytes`/`edge_nodes`; children are sorted by byte.
    edges: u32,
    edges_len: u16,
    /// First route in `entries`.
    entries: u32,
    entries_len: u32,
}

/// Prefix -> routes, longest-match friendly.
#[derive(Debug)]
pub struct PrefixTrie {
    nodes: Vec<Node>,
    edge_bytes: Vec<u8>,
    edge_nodes: Vec<u32>,
    /// Route indices, grouped per node, each group in the order given at build time.
    entries: Vec<u16>,
}

impl PrefixTrie {
    /// Build from `(prefix, route)` pairs. Within one prefix, routes keep the order of `rank`
    /// (lower first); duplicate pairs collapse. Prefixes longer than `PREFIX_BYTES_MAX` must
    /// have been rejected by the caller (they are ignored here).
    pub fn build(mut pairs: Vec<(Vec<u8>, u16)>, rank: impl Fn(u16) -> u64) -> PrefixTrie {
        pairs.retain(|(p, _)| p.len() <= PREFIX_BYTES_MAX);
        pairs.sort_by(|(pa, ra), (pb, rb)| pa.cmp(pb).then(rank(*ra).cmp(&rank(*rb))));
        pairs.dedup();

        let mut trie = PrefixTrie {
            nodes: vec![Node {
                edges: 0,
                edges_len: 0,
                entries: 0,
                entries_len: 0,
            }],
            edge_bytes: Vec::new(),
            edge_nodes: Vec::new(),
            entries: Vec::with_capacity(pairs.len()),
        };
        // Work items: (node index, depth, range of `pairs` whose prefixes pass through it).
        // Sorted order means a node's own entries (prefix length == depth) come first and
        // its children's ranges are contiguous and in byte order.
        let mut work: Vec<(usize, usize, usize, usize)> = vec![(0, 0, 0, pairs.len())];
        while let Some((node, depth, start, end)) = work.pop() {
            let group = &pairs[start..end];
            let own = group.iter().take_while(|(p, _)| p.len() == depth).count();
            let entries_at = trie.entries.len();
            trie.entries.extend(group[..own].iter().map(|(_, r)| *r));

            let edges_at = trie.edge_bytes.len();
            let mut i = start + own;
            while i < end {
                let byte = pairs[i].0[depth];
                let j = i + pairs[i..end]
                    .iter()
                    .take_while(|(p, _)| p[depth] == byte)
                    .count();
                let child = trie.nodes.len();
                trie.nodes.push(Node {
                    edges: 0,
                    edges_len: 0,
                    entries: 0,
                    entries_len: 0,
                });
                trie.edge_bytes.push(byte);
                trie.edge_nodes.push(child as u32);
                work.push((child, depth + 1, i, j));
                i = j;
            }
            if let Some(n) = trie.nodes.get_mut(node) {
                *n = Node {
                    edges: edges_at as u32,
                    edges_len: (trie.edge_bytes.len() - edges_at) as u16,
                    entries: entries_at as u32,
                    entries_len: own as u32,
                };
            }
        }
        trie
    }

    fn entries_of(&self, node: &Node) -> &[u16] {
        let at = node.entries as usize;
        self.entries
            .get(at..at + node.entries_len as usize)
            .unwrap_or(&[])
    }

    fn child(&self, node: &Node, byte: u8) -> Option<&Node> {
        let at = node.edges as usize;
        let bytes = self.edge_bytes.get(at..at + node.edges_len as usize)?;
        let i = bytes.binary_search(&byte).ok()?;
        let child = *self.edge_nodes.get(at + i)?;
        self.nodes.get(child as usize)
    }

    /// Visit every prefix of `key` that some route listed, shortest first, with its length
    /// and the routes that listed it. Never allocates.
    pub fn walk<'a>(&'a self, key: &[u8], mut visit: impl FnMut(usize, &'a [u16])) {
        let Some(mut node) = self.nodes.first() else {
            return;
        };
        let mut depth = 0;
        loop {
            let entries = self.entries_of(node);
            if !entries.is_empty() {
                visit(depth, entries);
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
        self.nodes.capacity() * std::mem::size_of::<Node>()
            + self.edge_bytes.capacity()
            + self.edge_nodes.capacity() * 4
            + self.entries.capacity() * 2
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
        let t = PrefixTrie::build(pairs, |r| if r == 3 { 0 } else { 10 + u64::from(r) });
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
        let t = PrefixTrie::build(Vec::new(), |_| 0);
        assert!(collect(&t, b"+1212").is_empty());
        assert!(t.is_empty());
    }
}
