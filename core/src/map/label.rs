//! A short human label for each event: the first line of its LOG payload, because
//! homer-app previews the first 50 characters of a payload as the arrow's text; a label of
//! at most [`MAX_LABEL`] characters is whole within the preview. Events of a
//! PeerConnection end with its short name (the diagnosis's `names`):
//! `ice failed s1◂Bob`, `hangup DTLS alert Alice ▲`.

use crate::correlate::Correlated;
use crate::janus::event::Body;
use crate::janus::event::EventType;
use crate::janus::Event;

/// Longest label, characters.
pub const MAX_LABEL: usize = 50;

/// Writes the label of a correlated event into `out` (cleared first; a buffer the caller
/// reuses, so labelling allocates nothing per event): what happened, and who when known
/// (`joined Alice`, `remote offer`, `ice connected`, `webrtcup`, `slowlink video`,
/// `session created`). `name`: the short name of the event's PeerConnection, added to
/// the events of its handle (plugin events name the participant's display instead).
pub fn label(c: &Correlated, name: Option<&str>, out: &mut String) {
    out.clear();
    let ev = &c.event;
    what(ev, out);
    let trimmed = out.trim_end().len();
    out.truncate(trimmed);
    let display = c.facts.display.as_deref().filter(|d| !d.is_empty());
    match (ev.kind, display, name) {
        (EventType::Plugin, Some(who), _) => {
            out.push(' ');
            out.push_str(who);
        }
        (EventType::Plugin, None, _) => {}
        (_, _, Some(n)) => {
            out.push(' ');
            out.push_str(n);
        }
        _ => {}
    }
    // One line of words.
    if out.bytes().any(|b| b < 0x20) {
        *out = out
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
    }
    cut(out);
}

fn cut(l: &mut String) {
    if let Some((end, _)) = l.char_indices().nth(MAX_LABEL) {
        l.truncate(end);
    }
}

/// A field name a label reads from an event's bytes: the searcher of the quoted name
/// (`"ice"`), built once.
pub(crate) struct Key(memchr::memmem::Finder<'static>);

impl Key {
    /// The key of the field `name`.
    pub(crate) fn new(name: &str) -> Key {
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
    reason: Key,
}

static KEYS: std::sync::LazyLock<Keys> = std::sync::LazyLock::new(|| Keys {
    plugin: Key::new("plugin"),
    ice: Key::new("ice"),
    dtls: Key::new("dtls"),
    connection: Key::new("connection"),
    media: Key::new("media"),
    event: Key::new("event"),
    status: Key::new("status"),
    reason: Key::new("reason"),
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
            Some(crate::janus::event::Plugin::Other) if &**name == "attached" => {
                let package = field(&k.plugin).unwrap_or("plugin");
                put(&[
                    "attached",
                    package.strip_prefix("janus.plugin.").unwrap_or(package),
                ])
            }
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
        (_, EventType::WebRtc, Some(1)) => put(&["ice", field(&k.ice).unwrap_or("state")]),
        (_, EventType::WebRtc, Some(2)) => put(&["local candidate"]),
        (_, EventType::WebRtc, Some(3)) => put(&["remote candidate"]),
        (_, EventType::WebRtc, Some(4)) => put(&["selected pair"]),
        (_, EventType::WebRtc, Some(5)) => put(&["dtls", field(&k.dtls).unwrap_or("state")]),
        (_, EventType::WebRtc, Some(6)) => match field(&k.connection) {
            Some("hangup") => put(&["hangup", field(&k.reason).unwrap_or("")]),
            c => put(&[c.unwrap_or("connection")]),
        },
        (_, EventType::Media, Some(1)) => {
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
        (_, EventType::Media, Some(2)) => put(&["slowlink", field(&k.media).unwrap_or("")]),
        (_, EventType::Media, Some(3)) => {
            put(&["media stats"]);
            all_media(&ev.raw, &k.media, out);
        }
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
        (_, EventType::External, _) => put(&["external"]),
        (_, EventType::Core, _) => put(&["core", field(&k.status).unwrap_or("event")]),
        _ => {
            out.push_str("event type ");
            crate::json::write_u64(out, u64::from(ev.kind.code()));
        }
    }
}

/// The media a stats event holds: ` audio`, or ` audio+video` for a combined event
/// (Janus's `combine_media_stats`: an array of every medium's stats).
fn all_media(raw: &[u8], key: &Key, out: &mut String) {
    let mut from = 0;
    let mut n = 0;
    while let Some(v) = str_field(&raw[from..], key) {
        // Where this value ends in `raw`: the search goes on after it.
        let at = v.as_ptr() as usize - raw.as_ptr() as usize;
        from = at + v.len();
        let already = out.rsplit([' ', '+']).take(n).any(|m| m == v);
        if !already && n < 4 {
            out.push(if n == 0 { ' ' } else { '+' });
            out.push_str(v);
            n += 1;
        }
    }
}

/// The value of the first string field `key` in `raw` (`"key":"value"`, whitespace
/// allowed around the colon), if it holds no escape; enough for the short state names a
/// label uses (`connected`, `webrtcup`, `audio`).
pub(crate) fn str_field<'a>(raw: &'a [u8], key: &Key) -> Option<&'a str> {
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
    fn combined_stats_name_every_medium() {
        let mut out = String::from("media stats");
        all_media(
            br#"{"event":[{"media":"audio","mid":"0"},{"media":"video","mid":"1"},{"media":"video","mid":"2"}]}"#,
            &Key::new("media"),
            &mut out,
        );
        assert_eq!(out, "media stats audio+video");
        let mut one = String::from("media stats");
        all_media(
            br#"{"event":{"media":"audio"}}"#,
            &Key::new("media"),
            &mut one,
        );
        assert_eq!(one, "media stats audio");
    }

    #[test]
    fn cut_on_a_character_boundary() {
        let mut l = format!("joined {}", "é".repeat(60));
        cut(&mut l);
        assert_eq!(l.chars().count(), MAX_LABEL);
        assert!(l.starts_with("joined é"));
    }
}
