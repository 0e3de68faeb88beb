//! `--shard i/n`: a replica audits only the pods whose uid hashes to its shard, so that n
//! replicas (or n groups of replicas, each electing its leader on its own Lease) split
//! the work and the memory of a cluster too big for one.
//!
//! The hash is FNV-1a of the uid, stable across builds and platforms: every replica of
//! every version puts a pod in the same shard. A pod's shard never changes (its uid does
//! not), so no pod is audited by two shards, and one is always audited by one: each
//! shard lists and watches every pod and keeps its own.
//!
//! Policy status: each shard writes only its own entry `status.shards["i/n"]`, by
//! server-side apply with a field manager of its own; shard 0 also writes the totals
//! (pods, violations, findings by rule, recent findings, recreated) as the sums of the
//! entries for the same n. No count is lost or counted twice: an entry has one writer
//! (the shard's leader), a shard resumes from its own entry after a restart, and the
//! totals are recomputed from the entries, never incremented. Entries of another shard
//! count (after `n` changed) are left out of the totals.

use std::fmt;
use std::str::FromStr;

use podwarden_model::policy::SHARDS_LIMIT;

use super::fnv::Fnv64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("{0:?} is not a shard: write i/n, e.g. 0/4")]
    Syntax(String),
    #[error("shard {index}/{count}: n must be 1 to {SHARDS_LIMIT} and i below n")]
    Range { index: u32, count: u32 },
}

impl Shard {
    /// Whether the pod with `uid` is this shard's.
    pub fn owns(&self, uid: &str) -> bool {
        of(uid, self.count) == self.index
    }

    /// `i/n`: the key of its entry in `status.shards` and its metrics label.
    pub fn key(&self) -> String {
        self.to_string()
    }

    /// The Lease its replicas elect their leader on.
    pub fn lease_name(&self, base: &str) -> String {
        format!("{base}-shard-{}-of-{}", self.index, self.count)
    }

    /// The field manager of its status entry.
    pub fn field_manager(&self) -> String {
        format!("podwarden-shard-{}-of-{}", self.index, self.count)
    }
}

/// The shard (of `count`) a uid hashes to.
pub fn of(uid: &str, count: u32) -> u32 {
    let mut h = Fnv64::default();
    h.write(uid.as_bytes());
    (h.0 % u64::from(count.max(1))) as u32
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || ShardError::Syntax(s.to_string());
        let (i, n) = s.split_once('/').ok_or_else(syntax)?;
        let index: u32 = i.trim().parse().map_err(|_| syntax())?;
        let count: u32 = n.trim().parse().map_err(|_| syntax())?;
        if count == 0 || count as usize > SHARDS_LIMIT || index >= count {
            return Err(ShardError::Range { index, count });
        }
        Ok(Shard { index, count })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_uid_is_in_exactly_one_shard() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut per_shard = [0usize; 4];
        for i in 0..4000 {
            let uid = format!("0d1f7a52-{i:04}-4c59-9a3e-5c1b2d3e4f50");
            let owners: Vec<&Shard> = shards.iter().filter(|s| s.owns(&uid)).collect();
            assert_eq!(owners.len(), 1, "{uid}");
            per_shard[owners[0].index as usize] += 1;
        }
        // Spread evenly enough to split the memory: each within 15% of a quarter.
        assert!(
            per_shard.iter().all(|n| n.abs_diff(1000) < 150),
            "{per_shard:?}"
        );
    }

    #[test]
    fn the_hash_is_stable_across_builds() {
        // FNV-1a of the bytes: a change here would move pods between shards on upgrade.
        assert_eq!(
            of("a", u32::MAX),
            (0xaf63_dc4c_8601_ec8c_u64 % u64::from(u32::MAX)) as u32
        );
    }

    #[test]
    fn a_shard_is_written_i_slash_n_and_bad_ones_say_why() {
        assert_eq!("1/4".parse::<Shard>(), Ok(Shard { index: 1, count: 4 }));
        assert_eq!(
            "1/4".parse::<Shard>().map(|s| s.key()),
            Ok("1/4".to_string())
        );
        assert!(matches!(
            "4/4".parse::<Shard>(),
            Err(ShardError::Range { .. })
        ));
        assert!(matches!(
            "0/0".parse::<Shard>(),
            Err(ShardError::Range { .. })
        ));
        assert!(matches!(
            "0/65".parse::<Shard>(),
            Err(ShardError::Range { .. })
        ));
        let err = "two".parse::<Shard>().expect_err("syntax");
        assert!(err.to_string().contains("i/n"), "{err}");
    }
}
