//! Sixty-four bytes at a time: which of them equal a byte, as the bits of a u64 (bit i for byte i). On
//! x86_64 with AVX2 when the processor has it, else SSE2 (part of every x86_64 processor); elsewhere with a
//! plain loop the compiler vectorizes as it can. The scans (scan.rs) build their masks from these and walk
//! the bits.

/// 64 bytes, loaded once, asked which of them equal (or are at most) a byte.
pub trait Block: Sized {
    /// The first 64 bytes of `s` (which holds at least 64).
    fn load(s: &[u8]) -> Self;
    /// Bytes equal to `c`.
    fn eq(&self, c: u8) -> u64;
    /// Bytes that equal `c` once 0x20 is set in them (`[` and `{` for 0x7b, `]` and `}` for 0x7d).
    fn eq_folded(&self, c: u8) -> u64;
    /// Bytes at most `c` (unsigned).
    fn le(&self, c: u8) -> u64;
    /// Bit i set when an odd number of the bits 0..=i of `x` are set (which bytes lie inside quotes).
    #[inline(always)]
    fn prefix_xor(x: u64) -> u64 {
        prefix_xor(x)
    }
}

/// Any processor: eight bytes at a time in a u64 (SWAR), each byte's answer in its high bit, gathered
/// into eight bits by one multiplication.
pub struct Plain([u64; 8]);

const L7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const H8: u64 = 0x8080_8080_8080_8080;
const B1: u64 = 0x0101_0101_0101_0101;

#[inline(always)]
fn gather(high: u64) -> u64 {
    // bit 7 of byte i to bit i: the products land on distinct bits, so nothing carries
    ((high >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

impl Plain {
    #[inline(always)]
    fn each(&self, f: impl Fn(u64) -> u64) -> u64 {
        let mut m = 0u64;
        for (i, &w) in self.0.iter().enumerate() {
            m |= gather(f(w) & H8) << (8 * i);
        }
        m
    }
}

/// The high bit of each byte of `x` that is zero (exactly: no borrow crosses bytes).
#[inline(always)]
fn zero_bytes(x: u64) -> u64 {
    !(((x & L7).wrapping_add(L7)) | x) & H8
}

impl Block for Plain {
    #[inline(always)]
    fn load(s: &[u8]) -> Plain {
        let mut w = [0u64; 8];
        for (i, x) in w.iter_mut().enumerate() {
            *x = u64::from_le_bytes(s[8 * i..8 * i + 8].try_into().unwrap());
        }
        Plain(w)
    }

    #[inline(always)]
    fn eq(&self, c: u8) -> u64 {
        self.each(|w| zero_bytes(w ^ (B1 * c as u64)))
    }

    #[inline(always)]
    fn eq_folded(&self, c: u8) -> u64 {
        self.each(|w| zero_bytes((w | (B1 * 0x20)) ^ (B1 * c as u64)))
    }

    #[inline(always)]
    fn le(&self, c: u8) -> u64 {
        // bytes below c + 1 (c < 127): adding 0x80 - (c + 1) to the low seven bits sets the high bit of those
        // that reach c + 1; a byte with its high bit set is above c anyway
        debug_assert!(c < 127);
        self.each(|w| !(((w & L7).wrapping_add(B1 * (0x7f - c as u64))) | w) & H8)
    }
}

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Sse2};

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Block;

    /// SSE2, part of every x86_64 processor: 16 bytes per instruction.
    pub struct Sse2([__m128i; 4]);

    #[inline(always)]
    fn mask16(v: __m128i) -> u64 {
        // SAFETY: SSE2 is part of the x86_64 baseline
        unsafe { _mm_movemask_epi8(v) as u16 as u64 }
    }

    impl Sse2 {
        #[inline(always)]
        fn each(&self, f: impl Fn(__m128i) -> __m128i) -> u64 {
            mask16(f(self.0[0])) | mask16(f(self.0[1])) << 16 | mask16(f(self.0[2])) << 32 | mask16(f(self.0[3])) << 48
        }
    }

    impl Block for Sse2 {
        #[inline(always)]
        fn load(s: &[u8]) -> Sse2 {
            assert!(s.len() >= 64);
            let p = s.as_ptr() as *const __m128i;
            // SAFETY: 64 readable bytes, checked above; unaligned loads
            unsafe {
                Sse2([_mm_loadu_si128(p), _mm_loadu_si128(p.add(1)), _mm_loadu_si128(p.add(2)),
                      _mm_loadu_si128(p.add(3))])
            }
        }

        #[inline(always)]
        fn eq(&self, c: u8) -> u64 {
            // SAFETY (here and below): SSE2 is part of the x86_64 baseline
            unsafe {
                let n = _mm_set1_epi8(c as i8);
                self.each(|v| _mm_cmpeq_epi8(v, n))
            }
        }

        #[inline(always)]
        fn eq_folded(&self, c: u8) -> u64 {
            unsafe {
                let (n, f) = (_mm_set1_epi8(c as i8), _mm_set1_epi8(0x20));
                self.each(|v| _mm_cmpeq_epi8(_mm_or_si128(v, f), n))
            }
        }

        #[inline(always)]
        fn le(&self, c: u8) -> u64 {
            unsafe {
                let n = _mm_set1_epi8(c as i8);
                self.each(|v| _mm_cmpeq_epi8(_mm_min_epu8(v, n), v))
            }
        }
    }

    /// AVX2: 32 bytes per instruction. Only used inside functions compiled for AVX2 (scan.rs checks the
    /// processor first), into which these are inlined.
    pub struct Avx2([__m256i; 2]);

    impl Avx2 {
        #[inline(always)]
        fn each(&self, f: impl Fn(__m256i) -> __m256i) -> u64 {
            // SAFETY: reached only on a processor with AVX2
            unsafe {
                _mm256_movemask_epi8(f(self.0[0])) as u32 as u64 | (_mm256_movemask_epi8(f(self.0[1])) as u32 as u64) << 32
            }
        }
    }

    impl Block for Avx2 {
        #[inline(always)]
        fn load(s: &[u8]) -> Avx2 {
            assert!(s.len() >= 64);
            let p = s.as_ptr() as *const __m256i;
            // SAFETY: 64 readable bytes, checked above; reached only on a processor with AVX2
            unsafe { Avx2([_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))]) }
        }

        #[inline(always)]
        fn eq(&self, c: u8) -> u64 {
            // SAFETY (here and below): reached only on a processor with AVX2
            unsafe {
                let n = _mm256_set1_epi8(c as i8);
                self.each(|v| _mm256_cmpeq_epi8(v, n))
            }
        }

        #[inline(always)]
        fn eq_folded(&self, c: u8) -> u64 {
            unsafe {
                let (n, f) = (_mm256_set1_epi8(c as i8), _mm256_set1_epi8(0x20));
                self.each(|v| _mm256_cmpeq_epi8(_mm256_or_si256(v, f), n))
            }
        }

        #[inline(always)]
        fn le(&self, c: u8) -> u64 {
            unsafe {
                let n = _mm256_set1_epi8(c as i8);
                self.each(|v| _mm256_cmpeq_epi8(_mm256_min_epu8(v, n), v))
            }
        }

        /// One carry-less multiplication by all ones (scan.rs checks for PCLMULQDQ along with AVX2).
        #[inline(always)]
        fn prefix_xor(x: u64) -> u64 {
            unsafe {
                let v = _mm_clmulepi64_si128(_mm_set_epi64x(0, x as i64), _mm_set1_epi8(-1), 0);
                _mm_cvtsi128_si64(v) as u64
            }
        }
    }
}

/// Bit i set when an odd number of the bits 0..=i of `x` are set (which bytes lie inside quotes).
#[inline(always)]
pub fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
}

/// Bits 0..=i.
#[inline(always)]
pub fn upto(i: u32) -> u64 {
    if i >= 63 { !0 } else { (2u64 << i) - 1 }
}

/// Bits i..64 (none when i >= 64).
#[inline(always)]
pub fn from(i: u64) -> u64 {
    if i >= 64 { 0 } else { !0u64 << i }
}

/// Which bytes are escaped by a backslash: a byte after an odd run of backslashes (`carry`: the first byte
/// is, after an odd run at the end of the previous 64). Returns the escaped bytes and the new carry.
#[inline(always)]
pub fn escaped(backslash: u64, carry: &mut u64) -> u64 {
    const ODD: u64 = 0xAAAA_AAAA_AAAA_AAAA;
    if backslash == 0 {
        let e = *carry;
        *carry = 0;
        return e;
    }
    let potential = backslash & !*carry; // an escaped backslash starts nothing
    let maybe = potential << 1;
    let codes = (maybe | ODD).wrapping_sub(potential) ^ ODD;
    let escaped = codes ^ (backslash | *carry);
    let escape = codes & backslash;
    *carry = escape >> 63;
    escaped
}
