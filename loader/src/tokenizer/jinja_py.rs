//! The Python-isms HF chat templates use, for `minijinja`.
//!
//! Templates are written against Jinja2 running in Python, so they call Python string and dict
//! methods (`.strip()`, `.startswith()`, `.items()`), `raise_exception(msg)`, `strftime_now(fmt)`
//! (`py_time`) and a `tojson` that formats like `json.dumps` (`py_json`).

use minijinja::value::ValueKind;
use minijinja::{Environment, Error, ErrorKind, State, Value};

use super::{py_json, py_time};

/// Sets HF's environment options and registers the helpers.
pub(crate) fn configure(env: &mut Environment<'static>) {
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_function("raise_exception", raise_exception);
    env.add_function("strftime_now", py_time::strftime_now);
    env.add_filter("tojson", py_json::tojson);
    env.set_unknown_method_callback(py_method);
}

/// A template error for a bad call.
pub(crate) fn invalid(msg: impl Into<String>) -> Error {
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
    fn trim_and_lstrip_blocks() {
        let out = render("{% if true %}\n  x\n{% endif %}\n", Value::from(())).unwrap();
        assert_eq!(out, "  x\n");
    }
}
