//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashing with domain separation, tree
//! heads, inclusion and consistency proofs, and their verification (RFC 9162 §2.1.3.2 and
//! §2.1.4.2).
//!
//! Two forms of the same algorithms: over a slice of all leaf hashes (`root`,
//! `inclusion_proof`, `consistency_proof`: the reference, O(n)), and over stored hashes of full
//! subtrees (`root_from`, `inclusion_proof_from`, `consistency_proof_from`: O(log n) hashes, read
//! through a lookup). A log stores a full subtree's hash once it is complete
//! ([`completed_by`]); every range the RFC's recursion visits is a run of such subtrees.

use sha2::{Digest, Sha256};

pub type Hash = [u8; 32];

pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The largest power of two smaller than `n` (n > 1).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// A full subtree: the `2^level` leaves from `index · 2^level`. Level 0 is a leaf; the
/// C2SP tlog-tiles "hash at level L, index N" is the same coordinate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subtree {
    pub level: u8,
    pub index: u64,
}

/// Looks up the hash of a full subtree that a log has stored.
pub type Lookup<'a> = &'a mut dyn FnMut(Subtree) -> Hash;

/// The full subtrees covering leaves `lo..hi`, left to right, largest first. `lo` must be a
/// multiple of a power of two at least `hi - lo`, as every range of the RFC's recursion is.
pub fn cover(lo: u64, hi: u64) -> Vec<Subtree> {
    let mut parts = vec![];
    let mut start = lo;
    while start < hi {
        let level = 63 - (hi - start).leading_zeros() as u8;
        debug_assert_eq!(start % (1 << level), 0, "unaligned range {lo}..{hi}");
        parts.push(Subtree {
            level,
            index: start >> level,
        });
        start += 1 << level;
    }
    parts
}

/// MTH of leaves `lo..hi` (non-empty) from the hashes of the subtrees covering it.
fn range_root(lo: u64, hi: u64, get: Lookup) -> Hash {
    let parts = cover(lo, hi);
    let mut rest = parts.iter().rev();
    let mut r = get(*rest.next().expect("a non-empty range"));
    for t in rest {
        r = node_hash(&get(*t), &r);
    }
    r
}

/// MTH of the first `size` leaves, from stored subtree hashes (at most log2(size) + 1 of them).
pub fn root_from(size: u64, get: Lookup) -> Hash {
    if size == 0 {
        return Sha256::digest(b"").into();
    }
    range_root(0, size, get)
}

/// PATH(index, D[size]) from stored subtree hashes.
pub fn inclusion_proof_from(index: u64, size: u64, get: Lookup) -> Vec<Hash> {
    let mut proof = vec![];
    if index < size {
        path_from(index, 0, size, get, &mut proof);
    }
    proof
}

fn path_from(m: u64, lo: u64, hi: u64, get: Lookup, out: &mut Vec<Hash>) {
    if hi - lo <= 1 {
        return;
    }
    let k = split((hi - lo) as usize) as u64;
    if m - lo < k {
        path_from(m, lo, lo + k, get, out);
        out.push(range_root(lo + k, hi, get));
    } else {
        path_from(m, lo + k, hi, get, out);
        out.push(range_root(lo, lo + k, get));
    }
}

/// PROOF(m, D[size]) from stored subtree hashes.
pub fn consistency_proof_from(m: u64, size: u64, get: Lookup) -> Vec<Hash> {
    let mut proof = vec![];
    if m > 0 && m < size {
        subproof_from(m, 0, size, true, get, &mut proof);
    }
    proof
}

fn subproof_from(m: u64, lo: u64, hi: u64, complete: bool, get: Lookup, out: &mut Vec<Hash>) {
    let n = hi - lo;
    if m == n {
        if !complete {
            out.push(range_root(lo, hi, get));
        }
        return;
    }
    let k = split(n as usize) as u64;
    if m <= k {
        subproof_from(m, lo, lo + k, complete, get, out);
        out.push(range_root(lo + k, hi, get));
    } else {
        subproof_from(m - k, lo + k, hi, false, get, out);
        out.push(range_root(lo, lo + k, get));
    }
}

/// The full subtrees that appending leaf `index` (hash `leaf`) completes, lowest first, with
/// their hashes: one per trailing one bit of `index`, each needing its left sibling.
pub fn completed_by(index: u64, leaf: Hash, get: Lookup) -> Vec<(Subtree, Hash)> {
    let mut done = vec![];
    let (mut t, mut h) = (Subtree { level: 0, index }, leaf);
    while t.index & 1 == 1 {
        let left = get(Subtree {
            level: t.level,
            index: t.index - 1,
        });
        h = node_hash(&left, &h);
        t = Subtree {
            level: t.level + 1,
            index: t.index >> 1,
        };
        done.push((t, h));
    }
    done
}

/// The subtrees a computation over stored hashes reads: run it once with this lookup, fetch
/// them, then run it again with the fetched hashes.
pub fn needed(compute: impl FnOnce(Lookup)) -> Vec<Subtree> {
    let mut wanted = std::collections::BTreeSet::new();
    compute(&mut |t| {
        wanted.insert(t);
        [0; 32]
    });
    wanted.into_iter().collect()
}

/// MTH over leaf hashes.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => Sha256::digest(b"").into(),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]): the audit path of leaf `index` in the tree of `leaves`.
pub fn inclusion_proof(index: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 || index >= n {
        return vec![];
    }
    let k = split(n);
    if index < k {
        let mut p = inclusion_proof(index, &leaves[..k]);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = inclusion_proof(index - k, &leaves[k..]);
        p.push(root(&leaves[..k]));
        p
    }
}

/// PROOF(m, D[n]) for the first `m` leaves of `leaves`.
pub fn consistency_proof(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    if m == 0 || m >= leaves.len() {
        return vec![];
    }
    subproof(m, leaves, true)
}

fn subproof(m: usize, leaves: &[Hash], complete: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return if complete { vec![] } else { vec![root(leaves)] };
    }
    let k = split(n);
    if m <= k {
        let mut p = subproof(m, &leaves[..k], complete);
        p.push(root(&leaves[k..]));
        p
    } else {
        let mut p = subproof(m - k, &leaves[k..], false);
        p.push(root(&leaves[..k]));
        p
    }
}

/// RFC 9162 §2.1.3.2: does `proof` show leaf `index` with hash `leaf` in a tree of `size`
/// with head `root`?
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &r == root
}

/// RFC 9162 §2.1.4.2: does `proof` show that the tree of `size1` with head `root1` is a
/// prefix of the tree of `size2` with head `root2`?
pub fn verify_consistency(
    size1: u64,
    size2: u64,
    root1: &Hash,
    root2: &Hash,
    proof: &[Hash],
) -> bool {
    if size1 > size2 {
        return false;
    }
    if size1 == size2 {
        return proof.is_empty() && root1 == root2;
    }
    if size1 == 0 {
        return proof.is_empty();
    }
    let mut path: Vec<Hash> = proof.to_vec();
    if size1.is_power_of_two() {
        path.insert(0, *root1);
    }
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f_n, mut s_n) = (size1 - 1, size2 - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    &fr == root1 && &sr == root2 && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The leaves of the transparency-dev/merkle and CT test vectors.
    fn vector_leaves() -> Vec<Hash> {
        [
            "",
            "00",
            "10",
            "2021",
            "3031",
            "40414243",
            "5051525354555657",
            "606162636465666768696a6b6c6d6e6f",
        ]
        .iter()
        .map(|h| leaf_hash(&hex::decode(h).unwrap()))
        .collect()
    }

    #[test]
    fn published_vectors() {
        let leaves = vector_leaves();
        assert_eq!(
            hex::encode(root(&[])),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(root(&leaves[..1])),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        assert_eq!(
            hex::encode(root(&leaves)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        let proof: Vec<String> = consistency_proof(1, &leaves)
            .iter()
            .map(hex::encode)
            .collect();
        assert_eq!(proof[0][..8].to_string(), "96a296d2");
        assert_eq!(proof[1][..8].to_string(), "5f083f0a");
        assert_eq!(proof[2][..8].to_string(), "6b47aaf2");
    }

    /// Every full subtree of `leaves`, as a log stores them while appending.
    fn stored(leaves: &[Hash]) -> std::collections::HashMap<Subtree, Hash> {
        let mut map = std::collections::HashMap::new();
        for (i, leaf) in leaves.iter().enumerate() {
            map.insert(
                Subtree {
                    level: 0,
                    index: i as u64,
                },
                *leaf,
            );
            let done = completed_by(i as u64, *leaf, &mut |t| map[&t]);
            map.extend(done);
        }
        map
    }

    #[test]
    fn stored_subtrees_give_the_same_roots_and_proofs() {
        let all: Vec<Hash> = (0..70u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let map = stored(&all);
        let get = &mut |t: Subtree| map[&t];
        assert_eq!(root_from(0, get), root(&[]));
        for n in 1..=all.len() {
            let leaves = &all[..n];
            assert_eq!(root_from(n as u64, get), root(leaves), "root of {n}");
            let few = needed(|g| {
                root_from(n as u64, g);
            });
            assert_eq!(few.len(), n.count_ones() as usize);
            for i in 0..n {
                assert_eq!(
                    inclusion_proof_from(i as u64, n as u64, get),
                    inclusion_proof(i, leaves),
                    "inclusion {i} of {n}"
                );
            }
            for m in 0..=n {
                assert_eq!(
                    consistency_proof_from(m as u64, n as u64, get),
                    consistency_proof(m, leaves),
                    "consistency {m} -> {n}"
                );
            }
        }
        // Large trees: the reads stay logarithmic.
        let size = 10_000_000u64;
        assert!(needed(|g| drop(inclusion_proof_from(1234567, size, g))).len() <= 2 * 24);
        assert!(needed(|g| drop(consistency_proof_from(7654321, size, g))).len() <= 2 * 24);
    }

    #[test]
    fn every_proof_verifies_and_every_tamper_fails() {
        let all: Vec<Hash> = (0..40u32).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        for n in 1..=all.len() {
            let leaves = &all[..n];
            let head = root(leaves);
            for i in 0..n {
                let proof = inclusion_proof(i, leaves);
                assert!(
                    verify_inclusion(i as u64, n as u64, &leaves[i], &proof, &head),
                    "inclusion {i} of {n}"
                );
                assert!(!verify_inclusion(
                    i as u64,
                    n as u64,
                    &leaf_hash(b"forged"),
                    &proof,
                    &head
                ));
                if n > 1 {
                    assert!(!verify_inclusion(
                        ((i + 1) % n) as u64,
                        n as u64,
                        &leaves[i],
                        &proof,
                        &head
                    ));
                }
            }
            for m in 1..n {
                let proof = consistency_proof(m, leaves);
                let old = root(&leaves[..m]);
                assert!(
                    verify_consistency(m as u64, n as u64, &old, &head, &proof),
                    "consistency {m} -> {n}"
                );
                assert!(!verify_consistency(
                    m as u64,
                    n as u64,
                    &leaf_hash(b"x"),
                    &head,
                    &proof
                ));
                // A rewritten history (leaf m-1 replaced) is not consistent with the old head.
                let mut rewritten = leaves.to_vec();
                rewritten[m - 1] = leaf_hash(b"rewritten");
                let forged = consistency_proof(m, &rewritten);
                assert!(!verify_consistency(
                    m as u64,
                    n as u64,
                    &old,
                    &root(&rewritten),
                    &forged
                ));
            }
        }
    }
}
