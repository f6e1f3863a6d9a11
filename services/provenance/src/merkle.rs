//! RFC 6962 / RFC 9162 Merkle trees: leaf and node hashing with domain separation, tree
//! heads, inclusion and consistency proofs, and their verification (RFC 9162 §2.1.3.2 and
//! §2.1.4.2).

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
