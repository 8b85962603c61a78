//! Number formatting: floats written as Python's repr writes them.

/// Python's repr of a float: the shortest digits that read back, fixed notation for exponents -4..15.
pub(crate) fn py_repr(x: f64, out: &mut Vec<u8>) {
    let sci = format!("{:e}", x);
    let (mant, exp) = sci.split_once('e').unwrap();
    let exp: i32 = exp.parse().unwrap();
    let (neg, mant) = match mant.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mant),
    };
    let mut digits: Vec<u8> = mant.bytes().filter(|&b| b != b'.').collect();
    tie_to_even(x, &mut digits, exp);
    if neg {
        out.push(b'-');
    }
    let n = digits.len() as i32;
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            if n <= exp + 1 {
                out.extend_from_slice(&digits);
                for _ in 0..(exp + 1 - n) {
                    out.push(b'0');
                }
                out.extend_from_slice(b".0");
            } else {
                out.extend_from_slice(&digits[..(exp + 1) as usize]);
                out.push(b'.');
                out.extend_from_slice(&digits[(exp + 1) as usize..]);
            }
        } else {
            out.extend_from_slice(b"0.");
            for _ in 0..(-exp - 1) {
                out.push(b'0');
            }
            out.extend_from_slice(&digits);
        }
    } else {
        out.push(digits[0]);
        if n > 1 {
            out.push(b'.');
            out.extend_from_slice(&digits[1..]);
        }
        out.push(b'e');
        out.push(if exp < 0 { b'-' } else { b'+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push(b'0');
        }
        out.extend_from_slice(a.to_string().as_bytes());
    }
}

/// Where `x` lies exactly halfway between two shortest digit strings that both read back as `x`, Python's
/// repr takes the one whose last digit is even (562949953421312.25 is written `562949953421312.2`); Rust's
/// shortest formatting takes the upper one. This puts the last digit right. Only a float whose exact value
/// ends where the halfway point's final 5 would stand can be such a tie, which a look at its bits tells;
/// only then are its exact digits written out and compared.
fn tie_to_even(x: f64, digits: &mut [u8], exp: i32) {
    let n = digits.len();
    if (digits[n - 1] - b'0') % 2 == 0 {
        return;
    }
    let bits = x.abs().to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    if biased == 0x7ff {
        return;
    }
    let (m, e2) = if biased == 0 { (frac, -1074) } else { (frac | (1u64 << 52), biased - 1075) };
    if m == 0 {
        return;
    }
    let binary_places = -(e2 + m.trailing_zeros() as i32); // <= 0: x is a whole number
    let halfway_places = n as i32 - exp; // decimal places up to the halfway point's final 5
    if binary_places > 0 && binary_places != halfway_places || binary_places <= 0 && halfway_places > 0 {
        return;
    }
    let exact = format!("{:.*e}", 800, x.abs()); // every digit of a double's exact value, then zeros
    let (mant, e) = match exact.split_once('e') {
        Some(parts) => parts,
        None => return,
    };
    if e.parse::<i32>().ok() != Some(exp) {
        return;
    }
    let ex: Vec<u8> = mant.bytes().filter(|&b| b != b'.').collect();
    if ex.len() < n + 2 || ex[n] != b'5' || ex[n + 1..].iter().any(|&b| b != b'0') || ex[..n - 1] != digits[..n - 1] {
        return;
    }
    let lower = ex[n - 1];
    if lower == b'9' {
        return;
    }
    let even = if (lower - b'0') % 2 == 0 { lower } else { lower + 1 };
    // ...and only if that one reads back as `x` too (below a power of two the spacing halves: 2**-24 reads
    // back from `5.960464477539063e-08` alone)
    let mut text: Vec<u8> = digits[..n - 1].to_vec();
    text.push(even);
    let text = format!("{}e{}", std::str::from_utf8(&text).unwrap_or("0"), exp - (n as i32 - 1));
    if text.parse::<f64>().ok().map(f64::to_bits) == Some(x.abs().to_bits()) {
        digits[n - 1] = even;
    }
}
