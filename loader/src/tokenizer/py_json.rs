//! Jinja's `tojson` as HF templates expect it: Python's `json.dumps` formatting (`", "` and
//! `": "` separators, non-ASCII kept unless `ensure_ascii`), not minijinja's compact HTML-safe form.

use minijinja::value::Kwargs;
use minijinja::{Error, Value};

use super::jinja_py::invalid;

/// `tojson(indent=None, ensure_ascii=False, sort_keys=False)` formatted as Python's
/// `json.dumps`; the result is marked safe, as Jinja2's is.
pub(crate) fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, Error> {
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

#[cfg(test)]
mod tests {
    use super::super::jinja_py::configure;
    use minijinja::Environment;

    fn render(src: &str, ctx: minijinja::Value) -> String {
        let mut env = Environment::new();
        configure(&mut env);
        env.render_str(src, ctx).expect("template renders")
    }

    #[test]
    fn tojson_is_python_style() {
        let ctx = minijinja::context! { v => minijinja::context! { name => "f", args => vec![1, 2], s => "é<" } };
        assert_eq!(
            render("{{ v | tojson }}", ctx.clone()),
            r#"{"args": [1, 2], "name": "f", "s": "é<"}"#
        );
        assert_eq!(
            render("{{ v.args | tojson(indent=2) }}", ctx.clone()),
            "[\n  1,\n  2\n]"
        );
        assert_eq!(
            render("{{ v.s | tojson(ensure_ascii=true) }}", ctx),
            r#""\u00e9<""#
        );
    }
}
