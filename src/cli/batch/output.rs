//! The output of `sluice batch`: one JSON object per finished sequence, appended and flushed as
//! each finishes, so an interrupted run loses nothing already written. On start, the ids already
//! present are read back (a resumed run skips them) and a torn last line (a crash mid-write) is
//! cut off, so its sequence is done again.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::input::id_key;

/// The output file, open for appending.
pub struct Output {
    path: PathBuf,
    file: File,
}

/// What was found in an existing output file.
#[derive(Debug, Default)]
pub struct Existing {
    /// The ids of complete lines.
    pub done: HashSet<String>,
    /// Bytes of a torn last line that were cut off.
    pub torn_bytes: usize,
}

/// Reads the complete lines of `text`; returns the length of the good prefix too.
fn scan(path: &Path, text: &[u8]) -> Result<(Existing, usize), String> {
    let mut ex = Existing::default();
    let mut good_len = 0;
    let mut start = 0;
    let mut line_no = 0;
    while start < text.len() {
        line_no += 1;
        let end = text[start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| start + i);
        let (line, next) = match end {
            Some(e) => (&text[start..e], e + 1),
            None => (&text[start..], text.len()),
        };
        let parsed = serde_json::from_slice::<Value>(line)
            .ok()
            .and_then(|v| v.get("id").cloned());
        match (parsed, end) {
            (Some(id), Some(_)) => {
                ex.done.insert(id_key(&id));
                good_len = next;
            }
            (_, None) => {
                // The last line has no newline: a write was cut short.
                ex.torn_bytes = text.len() - start;
                break;
            }
            (None, Some(_)) if next == text.len() => {
                // A complete but unparseable last line: also a torn write.
                ex.torn_bytes = text.len() - start;
                break;
            }
            (None, Some(_)) if line.iter().all(u8::is_ascii_whitespace) => good_len = next,
            (None, Some(_)) => {
                return Err(format!(
                    "{}: line {line_no} is not a JSON object with an \"id\" (only the last line \
                     may be torn); fix or move the file before resuming into it",
                    path.display()
                ))
            }
        }
        start = next;
    }
    Ok((ex, good_len))
}

impl Output {
    /// Opens (or creates) `path` for appending, after reading the ids already in it and
    /// cutting off a torn last line.
    pub fn open(path: &Path) -> Result<(Output, Existing), String> {
        let say = |e: std::io::Error| format!("{}: {e}", path.display());
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(say(e)),
        };
        let (existing, good_len) = scan(path, &text)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(say)?;
        if existing.torn_bytes > 0 {
            file.set_len(good_len as u64).map_err(say)?;
        }
        Ok((
            Output {
                path: path.to_path_buf(),
                file,
            },
            existing,
        ))
    }

    /// Appends one line with one write and flushes it.
    pub fn write(&mut self, v: &Value) -> Result<(), String> {
        let mut line = v.to_string();
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .and_then(|()| self.file.flush())
            .map_err(|e| format!("writing {}: {e}", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_torn_last_line_is_cut_and_complete_ids_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(
            &p,
            "{\"id\":1,\"text\":\"a\"}\n{\"id\":\"x\",\"text\":\"b\"}\n{\"id\":3,\"te",
        )
        .unwrap();
        let (mut out, ex) = Output::open(&p).unwrap();
        assert_eq!(ex.done.len(), 2);
        assert!(ex.done.contains("1") && ex.done.contains("\"x\""));
        assert_eq!(ex.torn_bytes, "{\"id\":3,\"te".len());
        out.write(&json!({"id": 3, "text": "c"})).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert!(text.ends_with("{\"id\":3,\"text\":\"c\"}\n"), "{text}");
    }

    #[test]
    fn a_bad_line_in_the_middle_is_an_error_and_a_missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        std::fs::write(&p, "{\"id\":1}\ngarbage\n{\"id\":2}\n").unwrap();
        let e = Output::open(&p).err().unwrap();
        assert!(e.contains("line 2"), "{e}");
        let q = dir.path().join("new.jsonl");
        let (_, ex) = Output::open(&q).unwrap();
        assert!(ex.done.is_empty() && ex.torn_bytes == 0 && q.exists());
        std::fs::write(&p, "{\"id\":1}\n{\"id\":2,\"t\":\"x\"}").unwrap();
        let (_, ex) = Output::open(&p).unwrap();
        assert_eq!(
            (ex.done.len(), ex.torn_bytes > 0),
            (1, true),
            "no final newline is torn"
        );
    }

    #[test]
    fn an_unparseable_last_line_is_torn_even_with_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.jsonl");
        let good = "{\"id\":\"a\"}\n\n{\"id\":2}\n";
        let torn = "{\"id\":3,\"text\":\"x\n";
        std::fs::write(&p, format!("{good}{torn}")).unwrap();
        let (_, ex) = Output::open(&p).unwrap();
        assert_eq!(ex.torn_bytes, torn.len());
        assert!(ex.done.contains("\"a\"") && ex.done.contains("2") && !ex.done.contains("3"));
        assert_eq!(
            std::fs::read_to_string(&p).unwrap(),
            good,
            "cut at the last full line"
        );
        std::fs::write(&p, "{\"id\":9,\"te").unwrap();
        let (_, ex) = Output::open(&p).unwrap();
        assert!(ex.done.is_empty() && ex.torn_bytes == 11);
        assert_eq!(
            std::fs::read(&p).unwrap().len(),
            0,
            "only a torn line: nothing kept"
        );
    }
}
