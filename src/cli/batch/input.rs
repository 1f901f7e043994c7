//! The input of `sluice batch`: one JSON object per line, `{"id", "prompt" | "messages",
//! "max_tokens"?, "temperature"?, "seed"?, "stop"?}`. A bad line is an error naming its line
//! number and the problem; the other lines still run.

use std::collections::HashSet;

use serde_json::{Map, Value};
use sluice_loader::tokenizer::ChatMessage;

/// What a line asks to generate from.
#[derive(Clone, Debug, PartialEq)]
pub enum PromptSpec {
    /// Text: through the chat template as one user turn, unless `--raw`.
    Text(String),
    /// Chat messages, through the chat template.
    Messages(Vec<ChatMessage>),
}

/// One valid input line.
#[derive(Clone, Debug, PartialEq)]
pub struct InputLine {
    /// 1-based line number in the input file.
    pub line: usize,
    /// The id as given (a string or a number), echoed in the output.
    pub id: Value,
    /// What to generate from.
    pub prompt: PromptSpec,
    /// The line's "max_tokens" (else `--max-tokens`).
    pub max_tokens: Option<usize>,
    /// The line's "temperature" (else `--temperature`).
    pub temperature: Option<f32>,
    /// The line's "seed" (else `--seed`).
    pub seed: Option<u64>,
    /// Stop strings: the text ends just before the first one generated.
    pub stop: Vec<String>,
}

/// The key an id is compared by: its JSON value written canonically (`"7"` and `7` are
/// different ids, `"a\u0062"` and `"ab"` the same).
pub fn id_key(id: &Value) -> String {
    id.to_string()
}

fn field<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a Value> {
    o.get(k).filter(|v| !v.is_null())
}

/// Parses one line; `Ok(None)` for a blank line.
pub fn parse_line(line: usize, text: &str) -> Result<Option<InputLine>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let v: Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Value::Object(o) = v else {
        return Err("a line must be a JSON object".into());
    };
    let id = match field(&o, "id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id.clone(),
        Some(_) => return Err("\"id\" must be a string or a number".into()),
        None => return Err("the line has no \"id\"".into()),
    };
    let prompt = match (field(&o, "prompt"), field(&o, "messages")) {
        (Some(_), Some(_)) => return Err("give \"prompt\" or \"messages\", not both".into()),
        (Some(Value::String(p)), None) if p.is_empty() => return Err("\"prompt\" is empty".into()),
        (Some(Value::String(p)), None) => PromptSpec::Text(p.clone()),
        (Some(_), None) => return Err("\"prompt\" must be a string".into()),
        (None, Some(Value::Array(ms))) => PromptSpec::Messages(messages(ms)?),
        (None, Some(_)) => return Err("\"messages\" must be an array of {role, content}".into()),
        (None, None) => return Err("the line has neither \"prompt\" nor \"messages\"".into()),
    };
    let max_tokens = match field(&o, "max_tokens") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(n) if (1..=1_000_000).contains(&n) => Some(n as usize),
            _ => return Err("\"max_tokens\" must be an integer from 1 to 1000000".into()),
        },
    };
    let temperature = match field(&o, "temperature") {
        None => None,
        Some(v) => match v.as_f64() {
            Some(t) if t.is_finite() && t >= 0.0 => Some(t as f32),
            _ => return Err("\"temperature\" must be a finite number ≥ 0".into()),
        },
    };
    let seed = match field(&o, "seed") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .ok_or("\"seed\" must be a non-negative integer")?,
        ),
    };
    let stop = match field(&o, "stop") {
        None => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|s| s.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or("\"stop\" must be a string or an array of strings")?,
        Some(_) => return Err("\"stop\" must be a string or an array of strings".into()),
    };
    Ok(Some(InputLine {
        line,
        id,
        prompt,
        max_tokens,
        temperature,
        seed,
        stop,
    }))
}

fn messages(ms: &[Value]) -> Result<Vec<ChatMessage>, String> {
    if ms.is_empty() {
        return Err("\"messages\" is empty".into());
    }
    ms.iter()
        .enumerate()
        .map(|(i, m)| {
            let role = m.get("role").and_then(Value::as_str);
            let content = m.get("content").and_then(Value::as_str);
            match (role, content) {
                (Some(r), Some(c)) => Ok(ChatMessage {
                    role: r.to_string(),
                    content: c.to_string(),
                }),
                _ => Err(format!(
                    "messages[{i}] must be an object with string \"role\" and \"content\""
                )),
            }
        })
        .collect()
}

/// Every line of the input: valid lines, and `(line, problem)` for bad ones (a repeated id is
/// bad from its second appearance on).
pub fn parse_all(text: &str) -> (Vec<InputLine>, Vec<(usize, String)>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    let mut seen = HashSet::new();
    for (i, l) in text.lines().enumerate() {
        match parse_line(i + 1, l) {
            Ok(None) => {}
            Ok(Some(x)) => {
                if seen.insert(id_key(&x.id)) {
                    good.push(x);
                } else {
                    bad.push((
                        i + 1,
                        format!("the id {} appears earlier in the input", x.id),
                    ));
                }
            }
            Err(e) => bad.push((i + 1, e)),
        }
    }
    (good, bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_parse_with_their_options() {
        let l = parse_line(3, r#"{"id": 7, "prompt": "hi", "max_tokens": 5, "temperature": 0, "seed": 9, "stop": ["\n", "."]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(l.line, 3);
        assert_eq!(l.id, Value::from(7));
        assert_eq!(l.prompt, PromptSpec::Text("hi".into()));
        assert_eq!(
            (l.max_tokens, l.temperature, l.seed),
            (Some(5), Some(0.0), Some(9))
        );
        assert_eq!(l.stop, ["\n", "."]);
        let m = parse_line(
            1,
            r#"{"id": "a", "messages": [{"role": "user", "content": "x"}], "stop": "END"}"#,
        )
        .unwrap()
        .unwrap();
        assert!(matches!(m.prompt, PromptSpec::Messages(ref v) if v[0].content == "x"));
        assert_eq!(m.stop, ["END"]);
        assert_eq!(parse_line(2, "   "), Ok(None));
    }

    #[test]
    fn bad_lines_say_why() {
        for (text, why) in [
            ("{not json", "not valid JSON"),
            ("[1]", "JSON object"),
            (r#"{"prompt": "x"}"#, "no \"id\""),
            (r#"{"id": [1], "prompt": "x"}"#, "\"id\" must be"),
            (r#"{"id": 1}"#, "neither"),
            (r#"{"id": 1, "prompt": "x", "messages": []}"#, "not both"),
            (r#"{"id": 1, "prompt": 5}"#, "\"prompt\" must be"),
            (r#"{"id": 1, "prompt": ""}"#, "\"prompt\" is empty"),
            (r#"{"id": 1, "prompt": null}"#, "neither"),
            (r#"{"id": null, "prompt": "x"}"#, "no \"id\""),
            (r#"{"id": true, "prompt": "x"}"#, "\"id\" must be"),
            (r#"{"id": 1, "messages": "hi"}"#, "\"messages\" must be"),
            (r#"{"id": 1, "messages": [5]}"#, "messages[0]"),
            (
                r#"{"id": 1, "messages": [{"role": "user", "content": 3}]}"#,
                "messages[0]",
            ),
            (
                r#"{"id": 1, "prompt": "x", "max_tokens": 2.5}"#,
                "max_tokens",
            ),
            (
                r#"{"id": 1, "prompt": "x", "max_tokens": -3}"#,
                "max_tokens",
            ),
            (
                r#"{"id": 1, "prompt": "x", "temperature": "hot"}"#,
                "temperature",
            ),
            (r#"{"id": 1, "prompt": "x", "seed": -1}"#, "seed"),
            (r#"{"id": 1, "prompt": "x", "stop": 7}"#, "stop"),
            (r#"{"id": 1, "messages": []}"#, "empty"),
            (
                r#"{"id": 1, "messages": [{"role": "user"}]}"#,
                "messages[0]",
            ),
            (r#"{"id": 1, "prompt": "x", "max_tokens": 0}"#, "max_tokens"),
            (
                r#"{"id": 1, "prompt": "x", "temperature": -1}"#,
                "temperature",
            ),
            (r#"{"id": 1, "prompt": "x", "seed": "s"}"#, "seed"),
            (r#"{"id": 1, "prompt": "x", "stop": [1]}"#, "stop"),
        ] {
            let e = parse_line(1, text).expect_err(text);
            assert!(e.contains(why), "{text}: {e}");
        }
    }

    #[test]
    fn repeated_ids_are_bad_from_the_second_on() {
        let text = "{\"id\": 1, \"prompt\": \"a\"}\n\n{\"id\": \"1\", \"prompt\": \"b\"}\n{\"id\": 1, \"prompt\": \"c\"}\noops\n";
        let (good, bad) = parse_all(text);
        assert_eq!(good.len(), 2, "1 and \"1\" are different ids");
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].0, 4);
        assert!(bad[0].1.contains("appears earlier"));
        assert_eq!(bad[1].0, 5);
    }

    #[test]
    fn ids_compare_by_their_json_value() {
        let key = |t: &str| id_key(&serde_json::from_str::<Value>(t).unwrap());
        assert_eq!(key("7"), key(" 7"));
        assert_ne!(
            key("7"),
            key("\"7\""),
            "a number is not the string of its digits"
        );
        assert_ne!(key("7"), key("7.0"));
        assert_eq!(
            key(r#""a\u0062""#),
            key(r#""ab""#),
            "escapes are normalised"
        );
        assert_eq!(key(r#""é""#), key(r#""\u00e9""#));
        let l = parse_line(1, r#"{"id": "x\"y", "prompt": "p"}"#)
            .unwrap()
            .unwrap();
        let written = serde_json::json!({"id": l.id}).to_string();
        let back: Value = serde_json::from_str(&written).unwrap();
        assert_eq!(
            id_key(&back["id"]),
            id_key(&l.id),
            "an id survives the output file"
        );
    }
}
