//! Parsing of byte sizes given on the command line (`512M`, `2G`, `1.5GiB`, `4096`).

/// Parses a size: a number with an optional binary suffix (K, M, G, T, with optional `i`/`B`).
/// Decimal fractions are allowed with a suffix (`1.5G`). Errors are one sentence.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, suffix) = t.split_at(split);
    let mult: u64 = match suffix.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KI" | "KIB" => 1 << 10,
        "M" | "MB" | "MI" | "MIB" => 1 << 20,
        "G" | "GB" | "GI" | "GIB" => 1 << 30,
        "T" | "TB" | "TI" | "TIB" => 1 << 40,
        _ => return Err(format!("'{s}' is not a size (use bytes or a suffix: 512M, 2G)")),
    };
    if num.is_empty() {
        return Err(format!("'{s}' is not a size (use bytes or a suffix: 512M, 2G)"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(mult).ok_or_else(|| format!("size '{s}' is too large"));
    }
    match num.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 && mult > 1 => {
            let bytes = x * mult as f64;
            if bytes > u64::MAX as f64 {
                Err(format!("size '{s}' is too large"))
            } else {
                Ok(bytes as u64)
            }
        }
        _ => Err(format!("'{s}' is not a size (use bytes or a suffix: 512M, 2G)")),
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1.5g"), Ok(3 << 29));
        assert!(parse_size("").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("1.5").is_err());
        assert!(parse_size("99999999999T").is_err());
    }
}
