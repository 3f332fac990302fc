//! Splitting an event-handler body into its events without parsing them: a body is one
//! JSON object, an array of them, or NDJSON (objects, or arrays, one after another). Each
//! event is cut out as its own slice, so one malformed event never takes the others of
//! the same body down with it. The cutting is the scanner's lenient mode
//! (`janus::scan::lenient`): brackets and strings only, so that a malformed event still
//! ends where its brackets say.

use super::scan::lenient::{element_end, skip_ws, value_end};
use crate::reject::Reject;
use bytes::Bytes;

/// Why part of a body could not be cut into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// A value that is not an object or an array at the top level, or not an object inside one.
    #[error("byte {offset}: an event must be a JSON object, found {found:?}")]
    NotAnObject {
        /// Offset in the body.
        offset: usize,
        /// The first byte found.
        found: char,
    },
    /// A string, object or array that never ends.
    #[error("byte {offset}: unterminated JSON value")]
    Unterminated {
        /// Offset where the value starts.
        offset: usize,
    },
    /// More pieces than [`MAX_PIECES`]: the rest of the body is not read.
    #[error("byte {offset}: more than {MAX_PIECES} events in one body; the rest is ignored")]
    TooMany {
        /// Offset where the rest starts.
        offset: usize,
    },
}

impl SplitError {
    /// Why it is rejected.
    pub fn reason(&self) -> Reject {
        match self {
            SplitError::TooMany { .. } => Reject::TooManyEvents,
            _ => Reject::NotAnEvent,
        }
    }
}

/// Most pieces one body is cut into (Janus groups at most 100 events): a body of a
/// million tiny elements costs no more than this many.
pub const MAX_PIECES: usize = 10_000;

/// One piece of a body: an event's bytes, or why a piece is not one.
pub type Piece = Result<Bytes, SplitError>;

/// Cuts `body` into events (slices of the same buffer, no copy).
pub fn split_events(body: &Bytes) -> Vec<Piece> {
    let b = &body[..];
    // Fast path for what Janus sends with `grouping = false` (compact JSON): one object
    // and no raw newline. It is handed on whole; should it hold more than one value, the
    // event parser rejects the trailing bytes and `split_events_full` is the fallback.
    if let (Some(&b'{'), Some(&b'}')) = (b.first(), b.last()) {
        if memchr::memchr(b'\n', b).is_none() {
            return vec![Ok(body.clone())];
        }
    }
    split_events_full(body)
}

/// Cuts `body` into events, scanning every value.
pub fn split_events_full(body: &Bytes) -> Vec<Piece> {
    let b = &body[..];
    let mut pos = skip_ws(b, 0);
    // A UTF-8 byte order mark is tolerated at the start.
    if b[pos..].starts_with(&[0xef, 0xbb, 0xbf]) {
        pos = skip_ws(b, pos + 3);
    }
    split_rest(body, pos)
}

/// Cuts the rest of `body` into events from `pos`, a position between top-level values.
pub fn split_rest(body: &Bytes, pos: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    split_top(body, pos, &mut out);
    out
}

/// Cuts the rest of `body` into events from `pos`, the start of an element of the
/// top-level array that opens at `array_start`, then the values after that array.
pub fn split_rest_in_array(body: &Bytes, array_start: usize, pos: usize) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut next = body.len();
    if split_elements(body, array_start, pos, &mut out, &mut next) {
        split_top(body, next, &mut out);
    }
    out
}

fn split_top(body: &Bytes, mut pos: usize, out: &mut Vec<Piece>) {
    let b = &body[..];
    pos = skip_ws(b, pos);
    while pos < b.len() {
        if out.len() >= MAX_PIECES {
            out.push(Err(SplitError::TooMany { offset: pos }));
            return;
        }
        match b[pos] {
            b'{' => match value_end(b, pos) {
                Some(end) => {
                    out.push(Ok(body.slice(pos..end)));
                    pos = end;
                }
                None => {
                    out.push(Err(SplitError::Unterminated { offset: pos }));
                    return;
                }
            },
            b'[' => {
                if !split_elements(body, pos, pos + 1, out, &mut pos) {
                    return;
                }
            }
            c => {
                out.push(Err(SplitError::NotAnObject {
                    offset: pos,
                    found: char::from(c),
                }));
                // Skip to the next line: NDJSON recovers at the next event.
                pos = b[pos..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |n| pos + n + 1);
            }
        }
        pos = skip_ws(b, pos);
        if pos < b.len() && b[pos] == b',' {
            pos = skip_ws(b, pos + 1);
        }
    }
}

/// Splits the elements of the array opening at `start`, from `pos` (an element or the
/// first byte after `[`); returns false when the rest of the body is lost.
fn split_elements(
    body: &Bytes,
    start: usize,
    pos: usize,
    out: &mut Vec<Piece>,
    next: &mut usize,
) -> bool {
    let b = &body[..];
    let mut pos = skip_ws(b, pos);
    loop {
        if pos >= b.len() {
            out.push(Err(SplitError::Unterminated { offset: start }));
            return false;
        }
        match b[pos] {
            b']' => {
                *next = pos + 1;
                return true;
            }
            b',' => {
                pos = skip_ws(b, pos + 1);
                continue;
            }
            _ => {}
        }
        if out.len() >= MAX_PIECES {
            out.push(Err(SplitError::TooMany { offset: pos }));
            return false;
        }
        let Some(end) = element_end(b, pos) else {
            out.push(Err(SplitError::Unterminated { offset: pos }));
            return false;
        };
        let mut trimmed = end;
        while trimmed > pos && b[trimmed - 1].is_ascii_whitespace() {
            trimmed -= 1;
        }
        if b[pos] == b'{' {
            out.push(Ok(body.slice(pos..trimmed)));
        } else {
            out.push(Err(SplitError::NotAnObject {
                offset: pos,
                found: char::from(b[pos]),
            }));
        }
        pos = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(body: &str) -> Vec<Result<String, SplitError>> {
        split_events(&Bytes::from(body.to_string()))
            .into_iter()
            .map(|p| p.map(|b| String::from_utf8(b.to_vec()).unwrap()))
            .collect()
    }

    #[test]
    fn object_array_and_ndjson() {
        assert_eq!(texts(r#" {"a":1} "#), vec![Ok(r#"{"a":1}"#.into())]);
        assert_eq!(
            texts(r#"[ {"a":"]"} , {"b":[1,{"c":2}]} ]"#),
            vec![Ok(r#"{"a":"]"}"#.into()), Ok(r#"{"b":[1,{"c":2}]}"#.into())]
        );
        assert_eq!(
            texts("{\"a\":1}\n{\"b\":\"x\\\"}\"}\r\n[{\"c\":3}]\n"),
            vec![
                Ok(r#"{"a":1}"#.into()),
                Ok(r#"{"b":"x\"}"}"#.into()),
                Ok(r#"{"c":3}"#.into())
            ]
        );
        assert_eq!(texts("[]"), vec![]);
        assert_eq!(texts(""), vec![]);
    }

    #[test]
    fn a_bad_element_does_not_take_the_others() {
        let got = texts(r#"[{"a":1}, 42, {"b":tru}, {"c":3}]"#);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], Ok(r#"{"a":1}"#.into()));
        assert_eq!(
            got[1],
            Err(SplitError::NotAnObject {
                offset: 10,
                found: '4'
            })
        );
        // Cut out as an event; the JSON parser reports it.
        assert_eq!(got[2], Ok(r#"{"b":tru}"#.into()));
        assert_eq!(got[3], Ok(r#"{"c":3}"#.into()));
        let got = texts("garbage line\n{\"a\":1}");
        assert!(got[0].is_err());
        assert_eq!(got[1], Ok(r#"{"a":1}"#.into()));
    }

    #[test]
    fn one_line_object_fast_path_and_its_fallback() {
        let body = Bytes::from_static(br#"{"a":1}{"b":2}"#);
        assert_eq!(split_events(&body).len(), 1, "handed on whole");
        let full: Vec<_> = split_events_full(&body)
            .into_iter()
            .map(|p| p.unwrap())
            .collect();
        assert_eq!(
            full,
            [
                Bytes::from_static(br#"{"a":1}"#),
                Bytes::from_static(br#"{"b":2}"#)
            ]
        );
    }

    #[test]
    fn unterminated_values() {
        assert_eq!(
            texts(r#"{"a":1} {"b":"#),
            vec![
                Ok(r#"{"a":1}"#.into()),
                Err(SplitError::Unterminated { offset: 8 })
            ]
        );
        assert!(texts(r#"[{"a":1}, {"b":2}"#).last().unwrap().is_err());
        assert!(texts(r#"["abc"#).last().unwrap().is_err());
    }
}
