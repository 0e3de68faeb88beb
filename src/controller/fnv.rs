//! FNV-1a, 64 bits: stable across releases and platforms, for what must not change when
//! the controller is rebuilt (Event names, the shard a pod belongs to).

pub(crate) struct Fnv64(pub(crate) u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
