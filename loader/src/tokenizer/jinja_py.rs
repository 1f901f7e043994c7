//! The Python-isms HF chat templates use, for `minijinja`.
//!
//! Templates are written against Jinja2 running in Python, so they call Python string and dict
//! methods (`.strip()`, `.startswith()`, `.items()`), `raise_exception(msg)`, `strftime_now(fmt)`
//! and a `tojson` that formats like `json.dumps` (`", "` and `": "` separators, non-ASCII kept).

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error, ErrorKind, State, Value};

/// Sets HF's environment options and registers the helpers.
pub(crate) fn configure(env: &mut Environment<'static>) {
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", strftime_now);
    env.add_filter("tojson", tojson);
    env.set_unknown_method_callback(py_method);
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidOperation, msg.into())
}

/// `raise_exception(msg)`: the template rejects its input.
fn raise_exception(msg: String) -> Result<Value, Error> {
    Err(invalid(format!("template raised: {msg}")))
}

/// Python methods on strings and dicts.
fn py_method(_state: &State, value: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        return str_method(s, name, args);
    }
    if value.kind() == ValueKind::Map {
        return map_method(value, name, args);
    }
    Err(Error::from(ErrorKind::UnknownMethod))
}

/// Argument `i` as an optional string (absent or `none` gives `None`).
fn opt_str(args: &[Value], i: usize) -> Result<Option<&str>, Error> {
    match args.get(i) {
        None => Ok(None),
        Some(v) if v.is_none() || v.is_undefined() => Ok(None),
        Some(v) => v
            .as_str()
            .map(Some)
            .ok_or_else(|| invalid(format!("argument {} must be a string", i + 1))),
    }
}

fn req_str(args: &[Value], i: usize) -> Result<&str, Error> {
    opt_str(args, i)?.ok_or_else(|| invalid(format!("missing string argument {}", i + 1)))
}

/// Argument `i` as an optional integer; negative means "no limit" as in Python.
fn opt_limit(args: &[Value], i: usize) -> Result<Option<usize>, Error> {
    match args.get(i) {
        None => Ok(None),
        Some(v) => {
            let n = v
                .as_i64()
                .ok_or_else(|| invalid(format!("argument {} must be an integer", i + 1)))?;
            Ok(usize::try_from(n).ok())
        }
    }
}

fn str_method(s: &str, name: &str, args: &[Value]) -> Result<Value, Error> {
    let strip_set = |i| -> Result<Box<dyn Fn(char) -> bool>, Error> {
        Ok(match opt_str(args, i)? {
            Some(set) => {
                let set = set.to_string();
                Box::new(move |c| set.contains(c))
            }
            None => Box::new(char::is_whitespace),
        })
    };
    let v = match name {
        "strip" => Value::from(s.trim_matches(&*strip_set(0)?)),
        "lstrip" => Value::from(s.trim_start_matches(&*strip_set(0)?)),
        "rstrip" => Value::from(s.trim_end_matches(&*strip_set(0)?)),
        "startswith" | "endswith" => {
            let prefixes = str_or_seq(args.first())?;
            let hit = |p: &String| {
                if name == "startswith" {
                    s.starts_with(p.as_str())
                } else {
                    s.ends_with(p.as_str())
                }
            };
            Value::from(prefixes.iter().any(hit))
        }
        "upper" => Value::from(s.to_uppercase()),
        "lower" => Value::from(s.to_lowercase()),
        "title" => Value::from(title_case(s)),
        "capitalize" => {
            let mut cs = s.chars();
            let first: String = cs
                .next()
                .map(|c| c.to_uppercase().collect())
                .unwrap_or_default();
            Value::from(first + &cs.as_str().to_lowercase())
        }
        "replace" => {
            let (old, new) = (req_str(args, 0)?, req_str(args, 1)?);
            match opt_limit(args, 2)? {
                Some(n) => Value::from(s.replacen(old, new, n)),
                None => Value::from(s.replace(old, new)),
            }
        }
        "split" => Value::from(py_split(s, opt_str(args, 0)?, opt_limit(args, 1)?)),
        "splitlines" => Value::from(s.lines().map(String::from).collect::<Vec<_>>()),
        "join" => {
            let items = args
                .first()
                .ok_or_else(|| invalid("join needs an iterable"))?;
            let parts: Vec<String> = items.try_iter()?.map(|v| v.to_string()).collect();
            Value::from(parts.join(s))
        }
        "find" => {
            let sub = req_str(args, 0)?;
            Value::from(s.find(sub).map_or(-1, |at| s[..at].chars().count() as i64))
        }
        "count" => Value::from(s.matches(req_str(args, 0)?).count()),
        "isdigit" => Value::from(!s.is_empty() && s.chars().all(|c| c.is_numeric())),
        "isalpha" => Value::from(!s.is_empty() && s.chars().all(char::is_alphabetic)),
        "isalnum" => Value::from(!s.is_empty() && s.chars().all(char::is_alphanumeric)),
        "isspace" => Value::from(!s.is_empty() && s.chars().all(char::is_whitespace)),
        "islower" => {
            Value::from(s.chars().any(char::is_lowercase) && !s.chars().any(char::is_uppercase))
        }
        "isupper" => {
            Value::from(s.chars().any(char::is_uppercase) && !s.chars().any(char::is_lowercase))
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    };
    Ok(v)
}

/// A string or a sequence of strings (as `startswith` accepts a tuple).
fn str_or_seq(v: Option<&Value>) -> Result<Vec<String>, Error> {
    let v = v.ok_or_else(|| invalid("missing argument"))?;
    if let Some(s) = v.as_str() {
        return Ok(vec![s.to_string()]);
    }
    Ok(v.try_iter()?.map(|x| x.to_string()).collect())
}

/// Python's `str.split(sep, maxsplit)`: no separator splits on whitespace runs.
fn py_split(s: &str, sep: Option<&str>, max: Option<usize>) -> Vec<String> {
    match sep {
        Some(sep) if !sep.is_empty() => match max {
            Some(n) => s.splitn(n + 1, sep).map(String::from).collect(),
            None => s.split(sep).map(String::from).collect(),
        },
        _ => {
            let mut out: Vec<String> = Vec::new();
            let mut rest = s.trim_start();
            while !rest.is_empty() {
                if max.is_some_and(|n| out.len() == n) {
                    out.push(rest.to_string());
                    break;
                }
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
                rest = rest[end..].trim_start();
            }
            out
        }
    }
}

/// Python's `str.title()`: upper-case the first letter of each run of letters.
fn title_case(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_word = false;
    for c in s.chars() {
        if in_word {
            out.extend(c.to_lowercase());
        } else {
            out.extend(c.to_uppercase());
        }
        in_word = c.is_alphabetic();
    }
    out
}

fn map_method(map: &Value, name: &str, args: &[Value]) -> Result<Value, Error> {
    let keys = || map.try_iter();
    let v = match name {
        "items" => {
            let pairs: Result<Vec<Value>, Error> = keys()?
                .map(|k| Ok(Value::from(vec![k.clone(), map.get_item(&k)?])))
                .collect();
            Value::from(pairs?)
        }
        "keys" => Value::from(keys()?.collect::<Vec<_>>()),
        "values" => Value::from(
            keys()?
                .map(|k| map.get_item(&k))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        "get" => {
            let key = args.first().ok_or_else(|| invalid("get needs a key"))?;
            let found = map.get_item(key)?;
            if found.is_undefined() {
                args.get(1).cloned().unwrap_or(Value::from(()))
            } else {
                found
            }
        }
        _ => return Err(Error::from(ErrorKind::UnknownMethod)),
    };
    Ok(v)
}

/// `tojson(indent=None, ensure_ascii=False, sort_keys=False)` formatted as Python's
/// `json.dumps`; the result is marked safe, as Jinja2's is.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(value).map_err(|e| invalid(format!("tojson: {e}")))?;
    let style = JsonStyle {
        indent,
        ensure_ascii: ensure_ascii.unwrap_or(false),
        sort_keys: sort_keys.unwrap_or(false),
    };
    let mut out = String::new();
    style.write(&json, 0, &mut out);
    Ok(Value::from_safe_string(out))
}

/// How `json.dumps` was asked to format.
struct JsonStyle {
    indent: Option<usize>,
    ensure_ascii: bool,
    sort_keys: bool,
}

impl JsonStyle {
    fn write(&self, v: &serde_json::Value, depth: usize, out: &mut String) {
        use serde_json::Value as J;
        match v {
            J::Array(items) if !items.is_empty() => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    self.separator(i, depth + 1, out);
                    self.write(item, depth + 1, out);
                }
                self.close(depth, out);
                out.push(']');
            }
            J::Object(map) if !map.is_empty() => {
                let mut entries: Vec<(&String, &J)> = map.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (k, item)) in entries.into_iter().enumerate() {
                    self.separator(i, depth + 1, out);
                    self.string(k, out);
                    out.push_str(": ");
                    self.write(item, depth + 1, out);
                }
                self.close(depth, out);
                out.push('}');
            }
            J::String(s) => self.string(s, out),
            other => out.push_str(&other.to_string()),
        }
    }

    /// What goes before item `i` of a container at `depth`.
    fn separator(&self, i: usize, depth: usize, out: &mut String) {
        match self.indent {
            Some(n) => {
                if i > 0 {
                    out.push(',');
                }
                out.push('\n');
                out.extend(std::iter::repeat_n(' ', n * depth));
            }
            None if i > 0 => out.push_str(", "),
            None => {}
        }
    }

    fn close(&self, depth: usize, out: &mut String) {
        if let Some(n) = self.indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * depth));
        }
    }

    fn string(&self, s: &str, out: &mut String) {
        let quoted = serde_json::Value::String(s.to_string()).to_string();
        if !self.ensure_ascii {
            out.push_str(&quoted);
            return;
        }
        for c in quoted.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
}

/// `strftime_now(fmt)`: the current UTC time; supports `%Y %y %m %d %e %H %M %S %b %B %a %A %j %%`.
fn strftime_now(fmt: String) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format_time(secs, &fmt)
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats seconds since the Unix epoch (UTC) with a strftime subset.
fn format_time(secs: u64, fmt: &str) -> String {
    let days = (secs / 86_400) as i64;
    let (h, m, s) = ((secs % 86_400) / 3600, (secs % 3600) / 60, secs % 60);
    let (year, month, day) = civil_from_days(days);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::with_capacity(fmt.len() + 16);
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let piece = match chars.next() {
            Some('Y') => year.to_string(),
            Some('y') => format!("{:02}", year.rem_euclid(100)),
            Some('m') => format!("{month:02}"),
            Some('d') => format!("{day:02}"),
            Some('e') => format!("{day:2}"),
            Some('H') => format!("{h:02}"),
            Some('M') => format!("{m:02}"),
            Some('S') => format!("{s:02}"),
            Some('j') => format!("{yday:03}"),
            Some('b') => MONTHS[month as usize - 1][..3].to_string(),
            Some('B') => MONTHS[month as usize - 1].to_string(),
            Some('a') => WEEKDAYS[weekday][..3].to_string(),
            Some('A') => WEEKDAYS[weekday].to_string(),
            Some('%') => "%".to_string(),
            Some(other) => format!("%{other}"),
            None => "%".to_string(),
        };
        out.push_str(&piece);
    }
    out
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(src: &str, ctx: Value) -> Result<String, Error> {
        let mut env = Environment::new();
        configure(&mut env);
        env.render_str(src, ctx)
    }

    #[test]
    fn string_methods() {
        let ctx = minijinja::context! { s => "  Hello World  " };
        let out = render(
            "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ s.strip().lower() }}|{{ s.strip().startswith('Hell') }}|{{ s.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ '-'.join(['x','y']) }}|{{ 'xxhixx'.strip('x') }}|{{ 'ab'.replace('a', 'b') }}",
            ctx,
        )
        .unwrap();
        assert_eq!(
            out,
            r#"Hello World|Hello World  |  Hello World|hello world|True|["Hello", "World"]|["a", "b,c"]|x-y|hi|bb"#
        );
    }

    #[test]
    fn dict_methods() {
        let ctx = minijinja::context! { d => minijinja::context! { a => 1 } };
        let out = render("{% for k, v in d.items() %}{{ k }}={{ v }}{% endfor %}|{{ d.get('a') }}|{{ d.get('z', 7) }}", ctx).unwrap();
        assert_eq!(out, "a=1|1|7");
    }

    #[test]
    fn raise_exception_fails_the_render() {
        let err = render("{{ raise_exception('no system role') }}", Value::from(())).unwrap_err();
        assert!(format!("{err:#}").contains("no system role"), "{err:#}");
    }

    #[test]
    fn tojson_is_python_style() {
        let ctx = minijinja::context! { v => minijinja::context! { name => "f", args => vec![1, 2], s => "é<" } };
        assert_eq!(
            render("{{ v | tojson }}", ctx.clone()).unwrap(),
            r#"{"args": [1, 2], "name": "f", "s": "é<"}"#
        );
        assert_eq!(
            render("{{ v.args | tojson(indent=2) }}", ctx.clone()).unwrap(),
            "[\n  1,\n  2\n]"
        );
        assert_eq!(
            render("{{ v.s | tojson(ensure_ascii=true) }}", ctx).unwrap(),
            r#""\u00e9<""#
        );
    }

    #[test]
    fn trim_and_lstrip_blocks() {
        let out = render("{% if true %}\n  x\n{% endif %}\n", Value::from(())).unwrap();
        assert_eq!(out, "  x\n");
    }

    #[test]
    fn time_formatting() {
        // 2024-02-29 13:05:09 UTC, a Thursday.
        let t = 1_709_211_909;
        assert_eq!(
            format_time(t, "%d %b %Y %H:%M:%S %A %j %%"),
            "29 Feb 2024 13:05:09 Thursday 060 %"
        );
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    }
}
