//! The CSV reader of `--mount` values.

use crate::{Error, Result};

/// One record of Go's `encoding/csv` (what the Docker CLI uses for `--mount`): fields separated by
/// `,`; a field that starts with `"` is quoted, `""` inside it is a quote; a quote elsewhere is an
/// error. Unlike Go, a newline outside quotes is an error rather than the silent end of the value.
pub(super) fn csv_record(input: &str) -> Result<Vec<String>> {
    let err = |reason: &str| Error::Csv {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    if input.is_empty() {
        return Err(err("empty value"));
    }
    let mut fields = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(err("a quoted field is not closed")),
                    Some('"') => match chars.peek() {
                        Some('"') => {
                            chars.next();
                            field.push('"');
                        }
                        Some(',') | None => break,
                        Some(_) => return Err(err("extraneous \" in quoted field")),
                    },
                    Some(c) => field.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                match c {
                    ',' => break,
                    '"' => return Err(err("bare \" in non-quoted field")),
                    '\n' | '\r' => return Err(err("newline in value")),
                    _ => {
                        field.push(c);
                        chars.next();
                    }
                }
            }
        }
        fields.push(field);
        match chars.next() {
            Some(',') => continue,
            _ => break,
        }
    }
    Ok(fields)
}
