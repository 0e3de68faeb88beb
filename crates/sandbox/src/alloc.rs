//! Settings for mimalloc, the allocator of the `podwarden` binary and the benchmarks.
//!
//! mimalloc 2.x collects the whole heap, visiting every page, once per 10,000 calls to
//! its slow allocation path (`generic_collect`). The cost of a collection grows with
//! the heap: with 150k pods and their events in the sandbox (5 GB) it took a fifth of
//! the simulator's CPU. [`tune`] makes it once per 1,000,000 calls, the most the
//! option allows; freed memory is still reused at once, only the sweep is rarer.

use std::ffi::c_long;

use libmimalloc_sys::{mi_option_get, mi_option_set, mi_option_t};

/// `mi_option_generic_collect` in mimalloc 2.2's `mi_option_t`.
const GENERIC_COLLECT: mi_option_t = 36;
/// Its default there, which confirms the option is the one meant.
const GENERIC_COLLECT_DEFAULT: c_long = 10_000;
/// Slow-path allocations between whole-heap collections (mimalloc's maximum).
pub const COLLECT_EVERY: c_long = 1_000_000;

/// Applies the settings; returns whether they hold. False when the option reads as
/// neither its default nor the tuned value: another mimalloc version, or a value set
/// through `MIMALLOC_GENERIC_COLLECT`, which is left as it is.
pub fn tune() -> bool {
    // SAFETY: plain getters and setters of mimalloc's global options; the option is
    // only set when it reads as `generic_collect` with its default value.
    unsafe {
        match mi_option_get(GENERIC_COLLECT) {
            COLLECT_EVERY => true,
            GENERIC_COLLECT_DEFAULT => {
                mi_option_set(GENERIC_COLLECT, COLLECT_EVERY);
                mi_option_get(GENERIC_COLLECT) == COLLECT_EVERY
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn generic_collect_is_found_and_set() {
        assert!(super::tune(), "mi_option_generic_collect not at index 36");
        assert!(super::tune(), "a second call finds it tuned");
        // SAFETY: a getter of mimalloc's global options.
        let now = unsafe { libmimalloc_sys::mi_option_get(super::GENERIC_COLLECT) };
        assert_eq!(now, super::COLLECT_EVERY);
    }
}
