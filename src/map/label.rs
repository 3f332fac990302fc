//! A short human label for each event: the first thing in its LOG payload, because
//! homer-app previews the first 50 characters of a payload as the arrow's text. The
//! payload starts `{"label":"` (10 bytes), so a label of at most [`MAX_LABEL`] bytes is
//! whole within the preview.

use crate::correlate::Correlated;
use crate::janus::event::kind;
use crate::janus::event::Body;
use crate::janus::Event;

/// Longest label, bytes (cut on a character boundary).
pub const MAX_LABEL: usize = 38;

/// Writes the label of a correlated event into `out` (cleared first; a buffer the caller
/// reuses, so labelling allocates nothing per event): what happened, and who when known
/// (`joined Alice`, `remote offer`, `ice connected`, `webrtcup`, `slowlink video`,
/// `session created`).
pub fn label(c: &Correlated, out: &mut String) {
    out.clear();
    let ev = &c.event;
    what(ev, out);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    if let Some(who) = c.facts.display.as_deref().filter(|d| !d.is_empty()) {
        if ev.kind == kind::PLUGIN {
            out.push(' ');
            out.push_str(who);
        }
    }
    cut(out);
}

fn cut(l: &mut String) {
    if l.len() > MAX_LABEL {
        let mut end = MAX_LABEL;
        while !l.is_char_boundary(end) {
            end -= 1;
        }
        l.truncate(end);
    }
}

/// A field name a label reads from an event's bytes: the searcher of the quoted name
/// (`"ice"`), built once.
struct Key(memchr::memmem::Finder<'static>);

impl Key {
    /// The key of the field `name`.
    fn new(name: &str) -> Key {
        Key(memchr::memmem::Finder::new(format!("\"{name}\"").as_bytes()).into_owned())
    }
}

/// The fields labels read.
struct Keys {
    plugin: Key,
    ice: Key,
    dtls: Key,
    connection: Key,
    media: Key,
    event: Key,
    status: Key,
}

static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(|| Keys {
    plugin: Key::new("plugin"),
    ice: Key::new("ice"),
    dtls: Key::new("dtls"),
    connection: Key::new("connection"),
    media: Key::new("media"),
    event: Key::new("event"),
    status: Key::new("status"),
});

/// What happened, from the typed body where it has the fact, else from the event's own
/// bytes (a string field of its `event` object), written as words into `out`.
fn what(ev: &Event, out: &mut String) {
    let k = &*KEYS;
    let field = |key: &Key| str_field(&ev.raw, key);
    let mut put = |parts: &[&str]| {
        for (i, p) in parts.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(p);
        }
    };
    match (&ev.body, ev.kind, ev.subtype) {
        (Body::Session { name, .. }, _, _) => put(&["session", name]),
        (Body::Handle { name, plugin }, _, _) => match plugin {
            Some(p) if &**name == "attached" => put(&["attached", p.short()]),
            _ => put(&[name]),
        },
        (Body::Jsep { remote, sdp_type }, _, _) => {
            put(&[if *remote { "remote" } else { "local" }, sdp_type])
        }
        (Body::Plugin(p), _, _) => match &p.name {
            Some(n) => put(&[n]),
            None => {
                let package = field(&k.plugin).unwrap_or("plugin");
                put(&[
                    package.strip_prefix("janus.plugin.").unwrap_or(package),
                    "event",
                ])
            }
        },
        (_, kind::WEBRTC, Some(1)) => put(&["ice", field(&k.ice).unwrap_or("state")]),
        (_, kind::WEBRTC, Some(2)) => put(&["local candidate"]),
        (_, kind::WEBRTC, Some(3)) => put(&["remote candidate"]),
        (_, kind::WEBRTC, Some(4)) => put(&["selected pair"]),
        (_, kind::WEBRTC, Some(5)) => put(&["dtls", field(&k.dtls).unwrap_or("state")]),
        (_, kind::WEBRTC, Some(6)) => put(&[field(&k.connection).unwrap_or("connection")]),
        (_, kind::MEDIA, Some(1)) => {
            let receiving = memchr::memmem::find(&ev.raw, b"\"receiving\":true").is_some()
                || memchr::memmem::find(&ev.raw, b"\"receiving\": true").is_some();
            put(&[
                field(&k.media).unwrap_or("media"),
                if receiving {
                    "receiving"
                } else {
                    "not receiving"
                },
            ])
        }
        (_, kind::MEDIA, Some(2)) => put(&["slowlink", field(&k.media).unwrap_or("")]),
        (_, kind::MEDIA, Some(3)) => put(&["media stats", field(&k.media).unwrap_or("")]),
        (
            Body::Transport {
                transport, client, ..
            },
            _,
            _,
        ) => {
            let t = transport.as_deref().map_or("transport", |t| {
                t.strip_prefix("janus.transport.").unwrap_or(t)
            });
            put(&[t, field(&k.event).unwrap_or("event")]);
            if let Some(c) = client {
                out.push(' ');
                crate::json::write_socket_addr(out, *c);
            }
        }
        (_, kind::EXTERNAL, _) => put(&["external"]),
        (_, kind::CORE, _) => put(&["core", field(&k.status).unwrap_or("event")]),
        _ => {
            out.push_str("event type ");
            crate::json::write_u64(out, u64::from(ev.kind));
        }
    }
}

/// The value of the first string field `key` in `raw` (`"key":"value"`, whitespace
/// allowed around the colon), if it holds no escape; enough for the short state names a
/// label uses (`connected`, `webrtcup`, `audio`).
fn str_field<'a>(raw: &'a [u8], key: &Key) -> Option<&'a str> {
    let quoted = key.0.needle().len();
    let mut from = 0;
    // Each match is the key itself, quoted (not the tail of a longer name or a value).
    while let Some(at) = key.0.find(&raw[from..]) {
        let mut i = from + at + quoted;
        from = i;
        while raw.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if raw.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while raw.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if raw.get(i) != Some(&b'"') {
            // Not a string (an object of the same name): look further.
            continue;
        }
        let start = i + 1;
        let len = memchr::memchr2(b'"', b'\\', &raw[start..])?;
        if raw[start + len] != b'"' {
            return None;
        }
        return std::str::from_utf8(&raw[start..start + len]).ok();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_fields_compact_and_indented() {
        assert_eq!(
            str_field(br#"{"event":{"ice":"connected"}}"#, &Key::new("ice")),
            Some("connected")
        );
        assert_eq!(
            str_field(b"{\"ice\" :\n  \"failed\"}", &Key::new("ice")),
            Some("failed")
        );
        assert_eq!(str_field(br#"{"ice":1}"#, &Key::new("ice")), None);
        assert_eq!(
            str_field(
                br#"{"event":{"data":{"event":"request"}}}"#,
                &Key::new("event")
            ),
            Some("request")
        );
        assert_eq!(str_field(br#"{"a":"x\"y"}"#, &Key::new("a")), None);
        // A key named inside a value (escaped quotes) is not the key.
        assert_eq!(
            str_field(br#"{"x":"\"ice\"","ice":"new"}"#, &Key::new("ice")),
            Some("new")
        );
    }

    #[test]
    fn cut_on_a_character_boundary() {
        let mut l = format!("joined {}", "é".repeat(40));
        cut(&mut l);
        assert!(l.len() <= MAX_LABEL);
        assert!(l.starts_with("joined é"));
    }
}
