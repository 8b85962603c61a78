//! Numbers as text, quickly: integers, and floats as Python's repr writes them.

use crate::float_repr::py_repr;

const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

const POW10: [u64; 20] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000, 100_000_000,
                          1_000_000_000, 10_000_000_000, 100_000_000_000, 1_000_000_000_000,
                          10_000_000_000_000, 100_000_000_000_000, 1_000_000_000_000_000,
                          10_000_000_000_000_000, 100_000_000_000_000_000, 1_000_000_000_000_000_000,
                          10_000_000_000_000_000_000];

/// out += `bytes`: a copy of known size, which needs no call to memcpy.
#[inline(always)]
pub(crate) fn push_fixed<const N: usize>(bytes: &[u8; N], out: &mut Vec<u8>) {
    out.reserve(N);
    let len = out.len();
    // SAFETY: reserve made room for N more bytes, which are written before the length covers them.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), out.as_mut_ptr().add(len), N);
        out.set_len(len + N);
    }
}

/// The decimal digits of `n`, `width` of them at least (zeros in front; `width` at most 20).
#[inline]
pub(crate) fn write_u64_width(mut n: u64, width: usize, out: &mut Vec<u8>) {
    let t = ((64 - (n | 1).leading_zeros()) * 1233 >> 12) as usize; // about log10(n)
    let len = (t + (n >= POW10[t]) as usize).max(width).clamp(1, 20);
    let mut buf = [b'0'; 24];
    let mut at = len;
    while n >= 100 {
        let r = (n % 100) as usize * 2;
        n /= 100;
        buf[at - 2..at].copy_from_slice(&PAIRS[r..r + 2]);
        at -= 2;
    }
    if n >= 10 {
        let r = n as usize * 2;
        buf[at - 2..at].copy_from_slice(&PAIRS[r..r + 2]);
    } else {
        buf[at - 1] = b'0' + n as u8;
    }
    let mark = out.len();
    push_fixed(&buf, out);
    out.truncate(mark + len);
}

/// The decimal digits of `n`.
#[inline]
pub(crate) fn write_u64(n: u64, out: &mut Vec<u8>) {
    write_u64_width(n, 1, out);
}

#[inline]
pub(crate) fn write_i64(n: i64, out: &mut Vec<u8>) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(n.unsigned_abs(), out);
}

const P10: [f64; 23] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];
const LIMIT: f64 = 1125899906842624.0; // 2**50

/// A finite float as Python's repr writes it (`1.5`, `2.0`, `1e-05`, `-0.0`).
///
/// Most data holds floats with few decimals, which this finds directly: the fewest decimal places `d`
/// for which m = round(|x| * 10**d) gives m / 10**d == |x|. Both m (below 2**50) and 10**d are exact
/// doubles, so that division is rounded exactly as reading the text "m e-d" back is: the text reads back
/// as x. Below 2**50 the product is off by less than 1/8, and every decimal with d places that reads back
/// as x lies within 1/4 of the exact product, so the first d found is the fewest places any such text has,
/// and at that d there is one such m only: it is the shortest text, which repr writes. Anything else
/// (an exponent, 16 or 17 digits) is py_repr's.
pub(crate) fn write_f64(x: f64, out: &mut Vec<u8>) {
    let a = x.abs();
    if a == 0.0 {
        out.extend_from_slice(if x.is_sign_negative() { b"-0.0" } else { b"0.0" });
        return;
    }
    if (1e-4..1e15).contains(&a) {
        let mut d = 0;
        while d < P10.len() {
            let p = a * P10[d];
            if p >= LIMIT {
                break;
            }
            let m = (p + 0.5) as u64; // a nearest integer (below 2**50, p + 0.5 is exact)
            if m as f64 / P10[d] == a {
                if x < 0.0 {
                    out.push(b'-');
                }
                fixed(m, d, out);
                return;
            }
            d += 1;
        }
    }
    py_repr(x, out);
}

/// m * 10**-d in fixed notation, at least one digit on each side of the point.
#[inline]
fn fixed(m: u64, d: usize, out: &mut Vec<u8>) {
    let scale = P10[d] as u64;
    write_u64(m / scale, out);
    out.push(b'.');
    write_u64_width(m % scale, d.max(1), out);
}

/// A float as repr writes it, NaN and the infinities included (`nan`, `inf`, `-inf`).
pub(crate) fn write_f64_repr(x: f64, out: &mut Vec<u8>) {
    if x.is_finite() {
        write_f64(x, out);
    } else if x.is_nan() {
        out.extend_from_slice(b"nan");
    } else {
        out.extend_from_slice(if x < 0.0 { b"-inf" } else { b"inf" });
    }
}
