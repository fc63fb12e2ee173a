//! JSON text in the form Python's `json.dumps` writes by default (`ensure_ascii=True`, separators
//! `", "` and `": "`, floats as `repr`), so that envelopes kumi writes match tomodachi's byte for byte.

use std::io;

use serde::Serialize;
use serde_json::ser::{CompactFormatter, Formatter, Serializer};

/// Serializes `value` as Python's `json.dumps(value)` would.
#[cfg(test)]
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    to_writer(&mut out, value)?;
    Ok(out)
}

/// Serializes `value` as Python's `json.dumps(value)` would, at the end of `out`.
pub(crate) fn to_writer<T: Serialize + ?Sized>(
    out: &mut Vec<u8>,
    value: &T,
) -> serde_json::Result<()> {
    let mut ser = Serializer::with_formatter(out, PythonFormatter);
    value.serialize(&mut ser)
}

/// Appends `text` as a JSON string the way Python writes it: quoted, `"` `\\` and control
/// characters escaped, everything outside printable ASCII as `\uXXXX`. Printable ASCII without
/// quotes or backslashes (names, ids, topics: nearly every string kumi writes itself) is copied
/// as it is.
pub(crate) fn write_str(out: &mut Vec<u8>, text: &str) {
    if text
        .bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    let mut ser = Serializer::with_formatter(out, PythonFormatter);
    // Writing a string to a Vec cannot fail.
    let _ = serde::Serializer::serialize_str(&mut ser, text);
}

/// Appends `value` as Python's `repr` of a float (`null` when not finite, as serde_json does).
pub(crate) fn write_f64(out: &mut Vec<u8>, value: f64) {
    // Writing to a Vec cannot fail.
    let _ = PythonFormatter.write_f64(out, value);
}

#[derive(Clone, Copy)]
struct PythonFormatter;

impl Formatter for PythonFormatter {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }

    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        // Python escapes everything outside printable ASCII (space..='~').
        if fragment.bytes().all(|b| b < 0x7f) {
            return w.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, ch) in fragment.char_indices() {
            if (ch as u32) < 0x7f {
                continue;
            }
            w.write_all(&fragment.as_bytes()[start..i])?;
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                write!(w, "\\u{unit:04x}")?;
            }
            start = i + ch.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        if !value.is_finite() {
            // serde_json writes null for these; keep its behaviour.
            return CompactFormatter.write_null(w);
        }
        let mut buf = [0u8; 40];
        let n = python_float_repr(value, &mut buf);
        w.write_all(&buf[..n])
    }

    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, f64::from(value))
    }
}

/// Python's `repr(float)` written into `out` (returns the length): the shortest round-tripping
/// digits, positional when the decimal exponent is in `-4..16`, else scientific with a signed,
/// at-least-two-digit exponent. No allocation: floats are on every envelope (the timestamp).
fn python_float_repr(value: f64, out: &mut [u8; 40]) -> usize {
    // ryu gives the shortest round-tripping digits (in its own layout: "1.5e-7", "0.0001",
    // "1e16", "100.0"); they are read back as significant digits and a decimal exponent.
    let mut ryu_buf = ryu::Buffer::new();
    let text = ryu_buf.format_finite(value).as_bytes();
    let negative = text.first() == Some(&b'-');
    let text = if negative { &text[1..] } else { text };
    let e_at = text.iter().position(|&b| b == b'e').unwrap_or(text.len());
    let e_part: i32 = std::str::from_utf8(&text[(e_at + 1).min(text.len())..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let mantissa = &text[..e_at];
    let int_len = mantissa
        .iter()
        .position(|&b| b == b'.')
        .unwrap_or(mantissa.len());
    let mut digits = [0u8; 20];
    let mut nd = 0;
    let mut leading_zeros = 0i32;
    for &b in mantissa.iter().filter(|b| b.is_ascii_digit()) {
        if nd == 0 && b == b'0' {
            leading_zeros += 1;
        } else if nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    while nd > 1 && digits[nd - 1] == b'0' {
        nd -= 1;
    }
    // The decimal exponent of the first significant digit (zero has none: "0.0").
    let exp = if nd == 0 {
        digits[0] = b'0';
        nd = 1;
        0
    } else {
        i32::try_from(int_len).unwrap_or(0) - 1 - leading_zeros + e_part
    };
    let digits = &digits[..nd];
    let mut o = 0;
    let mut push = |bytes: &[u8], o: &mut usize| {
        for &b in bytes {
            if *o < out.len() {
                out[*o] = b;
                *o += 1;
            }
        }
    };
    if negative {
        push(b"-", &mut o);
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            push(b"0.", &mut o);
            for _ in 0..(-exp - 1) {
                push(b"0", &mut o);
            }
            push(digits, &mut o);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                push(digits, &mut o);
                for _ in digits.len()..int_len {
                    push(b"0", &mut o);
                }
                push(b".0", &mut o);
            } else {
                push(&digits[..int_len], &mut o);
                push(b".", &mut o);
                push(&digits[int_len..], &mut o);
            }
        }
    } else {
        push(&digits[..1], &mut o);
        if digits.len() > 1 {
            push(b".", &mut o);
            push(&digits[1..], &mut o);
        }
        push(if exp < 0 { b"e-" } else { b"e+" }, &mut o);
        let abs = exp.unsigned_abs();
        if abs < 10 {
            push(b"0", &mut o);
        }
        let mut e = [0u8; 4];
        let mut ne = 0;
        let mut v = abs;
        loop {
            e[ne] = b'0' + (v % 10) as u8;
            ne += 1;
            v /= 10;
            if v == 0 || ne == e.len() {
                break;
            }
        }
        e[..ne].reverse();
        push(&e[..ne], &mut o);
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_python_json_dumps() {
        // Expected strings are what CPython 3.11 prints for json.dumps of the same value.
        let v = serde_json::json!({"a": [1, 2, {"b": null}], "é": "snow ☃ 😀", "t": true});
        assert_eq!(
            String::from_utf8(to_vec(&v).unwrap()).unwrap(),
            r#"{"a": [1, 2, {"b": null}], "t": true, "\u00e9": "snow \u2603 \ud83d\ude00"}"#
        );
        assert_eq!(
            String::from_utf8(to_vec("\x7f\n").unwrap()).unwrap(),
            r#""\u007f\n""#
        );
    }

    #[test]
    fn strings_written_directly_match_the_serializer() {
        for text in [
            "orders.created",
            "",
            "a\"b",
            "back\\slash",
            "tab\t",
            "é☃😀",
            "\x7f",
            "~ ok",
        ] {
            let mut direct = Vec::new();
            write_str(&mut direct, text);
            assert_eq!(direct, to_vec(text).unwrap(), "{text:?}");
        }
        let mut f = Vec::new();
        write_f64(&mut f, 1732700000.5);
        assert_eq!(f, b"1732700000.5");
    }

    #[test]
    fn floats_as_python_repr() {
        for (v, s) in [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1732700000.123456, "1732700000.123456"),
            (1e16, "1e+16"),
            (1.5e-7, "1.5e-07"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (123456789012345.6, "123456789012345.6"),
            (1.2345e22, "1.2345e+22"),
            (0.0, "0.0"),
            (-1e-100, "-1e-100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            // Exactly 985937369324647.25: both .2 and .3 round-trip; Python picks the even one.
            (985937369324647.2, "985937369324647.2"),
        ] {
            let mut buf = [0u8; 40];
            let n = python_float_repr(v, &mut buf);
            assert_eq!(std::str::from_utf8(&buf[..n]).unwrap(), s, "{v}");
        }
    }

    #[test]
    fn floats_round_trip_with_the_fewest_digits() {
        let mut rng = fastrand::Rng::with_seed(7);
        for i in 0..200_000 {
            let v = match i % 3 {
                0 => f64::from_bits(rng.u64(..)),
                1 => rng.f64() * 10f64.powi(rng.i32(-30..30)),
                _ => f64::from(rng.u32(..)) + f64::from(rng.u16(..)) / 1000.0,
            };
            if !v.is_finite() {
                continue;
            }
            let mut buf = [0u8; 40];
            let n = python_float_repr(v, &mut buf);
            let text = std::str::from_utf8(&buf[..n]).unwrap();
            assert_eq!(
                text.parse::<f64>().unwrap().to_bits(),
                v.to_bits(),
                "{text}"
            );
            // As many significant digits as Rust's own shortest form.
            let sci = format!("{:e}", v.abs());
            let want = sci.split('e').next().unwrap().replace('.', "");
            let mantissa = text.trim_start_matches('-').split('e').next().unwrap();
            let got: String = mantissa
                .chars()
                .filter(char::is_ascii_digit)
                .collect::<String>()
                .trim_start_matches('0')
                .trim_end_matches('0')
                .to_owned();
            // (Ties between two shortest forms go to the even digit, as in Python, so only the
            // length is compared: Rust rounds such ties up.)
            let want = want.trim_end_matches('0');
            assert_eq!(got.len(), want.len(), "{v:e} as {text}");
        }
    }
}
