//! A small XML subset for XMPP streams: the stream header, then one complete top-level
//! element (stanza) at a time. No DTDs, no processing instructions other than the XML
//! declaration, no namespaces beyond keeping prefixed names as written (matching is done on
//! local names). Inbound buffering is capped so a hostile server cannot exhaust memory.

use bytes::{Buf, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

/// Largest stanza accepted from the server.
pub const MAX_STANZA: usize = 1 << 20;

/// An XML element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    /// The name as written (`stream:features`, `message`, …).
    pub name: String,
    /// Attributes as written, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child nodes.
    pub children: Vec<Node>,
}

/// A child node.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Text, unescaped.
    Text(String),
}

fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

impl Element {
    /// The local name (without a prefix).
    pub fn local_name(&self) -> &str {
        local(&self.name)
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.local_name() == name)
    }

    /// The first child element with this local name and `xmlns`.
    pub fn child_ns(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements()
            .find(|e| e.local_name() == name && e.attr("xmlns") == Some(ns))
    }

    /// The concatenated text of this element's direct text children.
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }
}

/// One item of the inbound stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `<stream:stream …>`: the stream opened (or restarted); its attributes.
    StreamOpen(Element),
    /// A complete top-level element.
    Stanza(Element),
    /// `</stream:stream>`.
    StreamClose,
}

/// Escapes text or an attribute value, dropping characters XML 1.0 does not allow.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

fn unescape(raw: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(raw);
    if !text.contains('&') {
        return Ok(text.into_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut rest: &str = &text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let end = after.find(';').ok_or("an unterminated entity")?;
        let entity = &after[..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "apos" => '\'',
            "quot" => '"',
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or("a bad character reference")?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or("a bad character reference")?,
            _ => return Err(format!("an unknown entity `&{entity};`")),
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A tag: `<name attrs>`, `<name attrs/>` or `</name>`.
enum Tag {
    Open(Element),
    Empty(Element),
    Close(String),
}

/// Parses a tag starting at `buf[0] == b'<'`; `Ok(None)` when incomplete.
fn parse_tag(buf: &[u8]) -> Result<Option<(Tag, usize)>, String> {
    // Find the closing `>` outside quotes.
    let mut quote: Option<u8> = None;
    let mut end = None;
    for (i, b) in buf.iter().enumerate().skip(1) {
        match (quote, *b) {
            (Some(q), b) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(*b),
            (None, b'>') => {
                end = Some(i);
                break;
            }
            (None, b'<') => return Err("`<` inside a tag".into()),
            _ => {}
        }
    }
    let Some(end) = end else {
        return Ok(None);
    };
    let inner = &buf[1..end];
    if let Some(name) = inner.strip_prefix(b"/") {
        let name = String::from_utf8_lossy(name).trim().to_owned();
        return Ok(Some((Tag::Close(name), end + 1)));
    }
    let (inner, empty) = match inner.strip_suffix(b"/") {
        Some(i) => (i, true),
        None => (inner, false),
    };
    let name_end = inner
        .iter()
        .position(|b| b.is_ascii_whitespace())
        .unwrap_or(inner.len());
    let name = String::from_utf8_lossy(&inner[..name_end]).into_owned();
    if name.is_empty() {
        return Err("a tag without a name".into());
    }
    let mut attrs = Vec::new();
    let mut rest = &inner[name_end..];
    loop {
        while rest.first().is_some_and(u8::is_ascii_whitespace) {
            rest = &rest[1..];
        }
        if rest.is_empty() {
            break;
        }
        let eq = rest
            .iter()
            .position(|b| *b == b'=')
            .ok_or("an attribute without a value")?;
        let key = String::from_utf8_lossy(&rest[..eq]).trim().to_owned();
        rest = &rest[eq + 1..];
        while rest.first().is_some_and(u8::is_ascii_whitespace) {
            rest = &rest[1..];
        }
        let q = *rest.first().ok_or("an attribute without a value")?;
        if q != b'"' && q != b'\'' {
            return Err("an unquoted attribute".into());
        }
        let close = rest[1..]
            .iter()
            .position(|b| *b == q)
            .ok_or("an unterminated attribute")?;
        let value = unescape(&rest[1..1 + close])?;
        attrs.push((key, value));
        rest = &rest[close + 2..];
    }
    let element = Element {
        name,
        attrs,
        children: Vec::new(),
    };
    Ok(Some((
        if empty {
            Tag::Empty(element)
        } else {
            Tag::Open(element)
        },
        end + 1,
    )))
}

/// Skips whitespace, the XML declaration and comments; returns bytes skipped, or `None`
/// when more input is needed to know.
fn skip_misc(buf: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        while buf.get(at).is_some_and(u8::is_ascii_whitespace) {
            at += 1;
        }
        let rest = &buf[at..];
        if rest.starts_with(b"<?") {
            let end = rest.windows(2).position(|w| w == b"?>")?;
            at += end + 2;
        } else if rest.starts_with(b"<!--") {
            let end = rest.windows(3).position(|w| w == b"-->")?;
            at += end + 3;
        } else if rest.len() < 4 && b"<!--".starts_with(rest) && !rest.is_empty() {
            return None;
        } else {
            return Some(at);
        }
    }
}

/// Parses one complete element from the start of `buf`; `Ok(None)` when incomplete.
fn parse_element(buf: &[u8]) -> Result<Option<(Element, usize)>, String> {
    let mut stack: Vec<Element> = Vec::new();
    let mut at = 0;
    loop {
        if at >= buf.len() {
            return Ok(None);
        }
        if buf[at] == b'<' {
            if buf[at..].starts_with(b"<!--") {
                let Some(end) = buf[at..].windows(3).position(|w| w == b"-->") else {
                    return Ok(None);
                };
                at += end + 3;
                continue;
            }
            if buf[at..].starts_with(b"<![CDATA[") {
                let Some(end) = buf[at..].windows(3).position(|w| w == b"]]>") else {
                    return Ok(None);
                };
                let text = String::from_utf8_lossy(&buf[at + 9..at + end]).into_owned();
                if let Some(top) = stack.last_mut() {
                    top.children.push(Node::Text(text));
                }
                at += end + 3;
                continue;
            }
            let Some((tag, len)) = parse_tag(&buf[at..])? else {
                return Ok(None);
            };
            at += len;
            match tag {
                Tag::Open(e) => stack.push(e),
                Tag::Empty(e) => match stack.last_mut() {
                    Some(top) => top.children.push(Node::Element(e)),
                    None => return Ok(Some((e, at))),
                },
                Tag::Close(name) => {
                    let e = stack.pop().ok_or("a close tag without an open tag")?;
                    if e.name != name {
                        return Err(format!("`</{name}>` closes `<{}>`", e.name));
                    }
                    match stack.last_mut() {
                        Some(top) => top.children.push(Node::Element(e)),
                        None => return Ok(Some((e, at))),
                    }
                }
            }
        } else {
            let end = buf[at..]
                .iter()
                .position(|b| *b == b'<')
                .map_or(buf.len(), |p| at + p);
            if end == buf.len() {
                return Ok(None);
            }
            let text = unescape(&buf[at..end])?;
            match stack.last_mut() {
                Some(top) => top.children.push(Node::Text(text)),
                None if text.trim().is_empty() => {}
                None => return Err("text outside an element".into()),
            }
            at = end;
        }
    }
}

/// Decodes the inbound stream into [`Frame`]s; encodes raw XML strings.
#[derive(Debug, Default)]
pub struct XmlCodec;

impl Decoder for XmlCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        let frame = decode_frame(src)?;
        // The limit is on one stanza, so it is checked only while one is incomplete (a read
        // may bring many small stanzas at once, more than the limit together).
        if frame.is_none() && src.len() > MAX_STANZA {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "a stanza larger than the limit",
            ));
        }
        Ok(frame)
    }
}

/// The next complete frame at the start of `src` (consumed), or `None` when it is incomplete.
fn decode_frame(src: &mut BytesMut) -> Result<Option<Frame>, std::io::Error> {
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let Some(skip) = skip_misc(src) else {
        return Ok(None);
    };
    src.advance(skip);
    if src.is_empty() {
        return Ok(None);
    }
    if src.starts_with(b"</") {
        let Some(end) = src.iter().position(|b| *b == b'>') else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&src[2..end]).trim().to_owned();
        src.advance(end + 1);
        if local(&name) == "stream" {
            return Ok(Some(Frame::StreamClose));
        }
        return Err(bad(format!("an unexpected `</{name}>`")));
    }
    let head = &src[..src.len().min(16)];
    if head.starts_with(b"<stream:stream")
        || (head.len() < 14 && b"<stream:stream".starts_with(head))
    {
        if head.len() < 14 {
            return Ok(None);
        }
        return match parse_tag(src).map_err(bad)? {
            None => Ok(None),
            Some((Tag::Open(e) | Tag::Empty(e), len)) => {
                src.advance(len);
                Ok(Some(Frame::StreamOpen(e)))
            }
            Some((Tag::Close(_), len)) => {
                src.advance(len);
                Ok(Some(Frame::StreamClose))
            }
        };
    }
    match parse_element(src).map_err(bad)? {
        None => Ok(None),
        Some((e, len)) => {
            src.advance(len);
            Ok(Some(Frame::Stanza(e)))
        }
    }
}

impl Encoder<String> for XmlCodec {
    type Error = std::io::Error;

    fn encode(&mut self, item: String, dst: &mut BytesMut) -> Result<(), Self::Error> {
        dst.extend_from_slice(item.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &str) -> Vec<Frame> {
        let mut codec = XmlCodec;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        // Byte by byte, so every partial state is exercised.
        for b in input.as_bytes() {
            buf.extend_from_slice(&[*b]);
            while let Some(f) = codec.decode(&mut buf).expect("valid") {
                out.push(f);
            }
        }
        out
    }

    #[test]
    fn a_stream_decodes_into_header_stanzas_and_close() {
        let f = frames(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:client' id='x1' from=\"localhost\">\
             <stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>\n \
             <message from='a@b/c' type='chat'><body>1 &lt; 2 &amp; &#233;t&#xE9; ü</body><!-- x --></message>\
             <presence/></stream:stream>",
        );
        assert_eq!(f.len(), 5, "{f:?}");
        let Frame::StreamOpen(open) = &f[0] else {
            panic!("{f:?}")
        };
        assert_eq!(open.attr("id"), Some("x1"));
        assert_eq!(open.attr("from"), Some("localhost"));
        let Frame::Stanza(features) = &f[1] else {
            panic!("{f:?}")
        };
        assert_eq!(features.local_name(), "features");
        let mech = features
            .child("mechanisms")
            .and_then(|m| m.child("mechanism"));
        assert_eq!(mech.map(Element::text).as_deref(), Some("PLAIN"));
        let Frame::Stanza(msg) = &f[2] else {
            panic!("{f:?}")
        };
        assert_eq!(
            msg.child("body").map(Element::text).as_deref(),
            Some("1 < 2 & été ü")
        );
        assert_eq!(
            f[3],
            Frame::Stanza(Element {
                name: "presence".into(),
                ..Element::default()
            })
        );
        assert_eq!(f[4], Frame::StreamClose);
    }

    #[test]
    fn bad_xml_is_an_error_not_a_panic() {
        for input in [
            "<a></b>",
            "<a x=1/>",
            "<a>&bogus;</a>",
            "<a x='1' <b>",
            "</a>",
        ] {
            let mut buf = BytesMut::from(input);
            assert!(XmlCodec.decode(&mut buf).is_err(), "{input}");
        }
    }

    #[test]
    fn escaping_round_trips_and_drops_control_characters() {
        let s = "<a & 'b' \"c\">\u{1}\n";
        let e = escape(s);
        assert_eq!(e, "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;\n");
        assert_eq!(unescape(e.as_bytes()).expect("valid"), "<a & 'b' \"c\">\n");
    }
}
