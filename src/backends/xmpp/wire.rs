//! The XML of an XMPP stream: reading it incrementally with quick-xml (the stream header,
//! then one complete top-level element — a stanza — at a time, as a small tree), and
//! escaping outgoing text.
//!
//! # Reading in linear time
//!
//! Bytes come from the socket in whatever pieces TCP delivers. The codec
//! ([`XmlCodec`](struct@XmlCodec)) works on *tokens* — one tag, one run of character data,
//! one comment, CDATA section or processing instruction. The token not yet complete stays
//! at the start of the read buffer and the codec remembers how far it has searched it for
//! its end, with quick-xml's resumable end finders ([`ElementParser`], which skips a `>`
//! inside a quoted attribute value, [`CommentParser`], [`PiParser`]), so a byte is searched
//! once however small the reads. A complete token is parsed once by quick-xml, consumed
//! from the buffer, and added to the open elements of the stanza being read, which the
//! codec keeps between reads. Reading a stanza is therefore linear in its size;
//! [`XmlCodec::bytes_examined`] counts the work (the unit tests assert on it).
//!
//! Why a tokio-util [`Decoder`] over the read buffer rather than quick-xml's async reader
//! over the socket: the login needs the bare socket back for STARTTLS and hands the actor
//! the read half together with what was already read (`Framed::into_inner`/`into_parts`
//! give both, the partly read stanza included); the decoder runs after every read, so the
//! size limit holds with at most one read more buffered, even for a token that never ends
//! (quick-xml's buffered readers read a whole tag or text run into their buffer first, with
//! no bound); and it can be tested without a socket, in any chunking.
//!
//! # Limits, and skipping a stanza over one
//!
//! A stanza over [`MAX_STANZA`] bytes, nested deeper than [`MAX_DEPTH`] or with more than
//! [`MAX_NODES`] elements, attributes and text nodes is *skipped*, not an error: anyone who
//! can message the bot can send one (the server relays it), and a stream closed for it
//! would be a reconnect loop when the server redelivers it, stored offline, at each login.
//! As soon as the stanza (or the token being read) is over a limit, the codec drops what
//! it read of it — keeping its top-level element's name and its `from`, `type` and `id`,
//! when its start tag was read whole — and reads on in a skipping mode: it only finds the
//! end of each token with the same resumable end finders (their state is a few bytes, so a
//! token is searched as it arrives and dropped, however big: a 5 MiB attribute value or
//! text run is never buffered whole) and counts the depth, an integer (a nesting bomb
//! costs no tree and no recursion). When the stanza's top-level element closes it yields
//! [`Frame::Skipped`] with what it knew and the stanza's size, and the stream goes on.
//! While skipping, the buffer keeps at most the last read (and up to 8 bytes of a token
//! whose kind is not known yet); before the limit is hit it holds at most the limit and a
//! read, as before.
//!
//! Skipped content is checked less than read content: end tags are not matched to start
//! tags (only the depth is counted), and names, attributes, entities and UTF-8 are not
//! looked at. A DTD still closes the stream. The server parsed the stanza before relaying
//! it, so what is skipped is well-formed XML in practice.
//!
//! What cannot be skipped is an [`XmlError`]: a stream header over a limit, or an end tag
//! between stanzas over the size limit; so is XML that is not well-formed or that XMPP
//! forbids. The connection then tells the server (`<stream:error>`), closes the stream and
//! reconnects.
//!
//! # What XMPP needs, and restricted XML
//!
//! Names are kept as written (`stream:features`, `xml:lang`) and matched on local names;
//! each element's namespace is resolved with quick-xml's [`NamespaceResolver`], whose scope
//! starts with the stream header's declarations (`xmlns='jabber:client'`,
//! `xmlns:stream='http://etherx.jabber.org/streams'`) and is reset by a new header (a
//! stream restart after STARTTLS or SASL). An undeclared prefix resolves to no namespace
//! rather than an error. Entities are the five predefined ones and character references;
//! a DTD (so any other entity) is refused, as RFC 6120 §11.1 requires. Comments, the XML
//! declaration and processing instructions are skipped. Character data between stanzas may
//! only be whitespace (keepalives), which is dropped as it arrives.

use bytes::{Buf, BytesMut};
use quick_xml::{
    errors::IllFormedError,
    escape::unescape,
    events::{BytesStart, Event},
    name::{NamespaceResolver, ResolveResult},
    parser::{CommentParser, ElementParser, Parser, PiParser},
    Reader,
};
use tokio_util::codec::{Decoder, Encoder};

/// Largest stanza accepted from the server, in bytes of XML. Prosody's default
/// `c2s_stanza_size_limit` is 256 KiB and its own stream parser's default 1 MiB; a bigger
/// stanza is an attack or a bug, and the bound keeps a hostile server from exhausting memory.
pub const MAX_STANZA: usize = 1 << 20;

/// Deepest nesting of elements in a stanza (the stanza itself is depth 1). Real stanzas
/// nest a handful of levels (a MUC presence is 3, XHTML-IM a few more). Without a bound, a
/// megabyte of `<a>` is a tree 300,000 levels deep, and the recursive code that walks it
/// (`Drop`, `Debug`, `Clone`) overflows the stack: the process aborts.
pub const MAX_DEPTH: usize = 32;

/// Most elements, attributes and text nodes in one stanza. Each is an allocation of about
/// a hundred bytes, so a megabyte of `<a/>` would otherwise become some 40 MiB of tree; this
/// bounds the tree to a few MiB. Real stanzas have tens.
pub const MAX_NODES: usize = 16_384;

/// The namespace of `<stream:stream>`, `<stream:features>` and `<stream:error>`.
pub const NS_STREAMS: &str = "http://etherx.jabber.org/streams";

/// An XML element.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Element {
    /// The name as written (`stream:features`, `message`, …).
    pub name: String,
    /// The element's namespace, resolved from the prefix or the default namespace in scope
    /// (empty when there is none or the prefix is undeclared).
    pub ns: String,
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
    /// Text, unescaped (adjacent text, CDATA sections included, is one node).
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

    /// The first child element with this local name in namespace `ns`.
    pub fn child_ns(&self, name: &str, ns: &str) -> Option<&Element> {
        self.elements()
            .find(|e| e.local_name() == name && e.ns == ns)
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
    /// A top-level element over a limit, read to its end and dropped; the stream goes on.
    Skipped(Skipped),
    /// `</stream:stream>`.
    StreamClose,
}

/// Which limit a stanza went over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// More than [`MAX_STANZA`] bytes.
    Size,
    /// Elements nested deeper than [`MAX_DEPTH`].
    Depth,
    /// More than [`MAX_NODES`] elements, attributes and text nodes.
    Nodes,
}

impl Limit {
    /// A short name for logs and metrics: `size`, `depth`, `nodes`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Size => "size",
            Self::Depth => "depth",
            Self::Nodes => "nodes",
        }
    }

    /// The error for this limit, when what went over it cannot be skipped (a stream header).
    fn error(self) -> XmlError {
        match self {
            Self::Size => XmlError::TooLarge,
            Self::Depth => XmlError::TooDeep,
            Self::Nodes => XmlError::TooManyNodes,
        }
    }
}

/// The longest `from`, `type` or `id` kept from a skipped stanza's start tag (a JID is at
/// most 3071 bytes, RFC 7622 §3.1); a longer value is left out.
pub const MAX_SKIPPED_ATTR: usize = 3072;

/// A stanza read to its end and dropped because it went over a limit: what the codec knew
/// of it before the limit, and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The limit it went over (the first one).
    pub limit: Limit,
    /// Its length in bytes of XML, all of it (read and dropped).
    pub bytes: u64,
    /// The top-level element's name as written (`message`); empty when its start tag was
    /// itself over the size limit with a name longer than a kilobyte, or the skipped item
    /// was a comment or processing instruction between stanzas.
    pub name: String,
    /// Its `from`, `type` and `id` attributes, unescaped: only when its start tag was read
    /// whole before the limit was hit, and each at most [`MAX_SKIPPED_ATTR`] bytes.
    pub from: Option<String>,
    /// See `from`.
    pub kind: Option<String>,
    /// See `from`.
    pub id: Option<String>,
}

/// Why the inbound stream cannot be read on.
///
/// A stanza over a limit is not an error: it is skipped ([`Frame::Skipped`]). The limit
/// errors are left for what cannot be skipped: a stream header over a limit, or an end tag
/// between stanzas over the size limit.
#[derive(Debug, thiserror::Error)]
pub enum XmlError {
    /// Reading the socket failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A stream header (or an end tag between stanzas) over [`MAX_STANZA`].
    #[error(
        "a stream header or end tag larger than the limit of {} bytes",
        MAX_STANZA
    )]
    TooLarge,
    /// Nested deeper than [`MAX_DEPTH`] (a stanza that is, is skipped).
    #[error("elements nested deeper than the limit of {}", MAX_DEPTH)]
    TooDeep,
    /// A stream header with more than [`MAX_NODES`] attributes.
    #[error("a stream header with more than the limit of {} attributes", MAX_NODES)]
    TooManyNodes,
    /// Not XML, as quick-xml found.
    #[error("not well-formed XML: {0}")]
    Xml(#[from] quick_xml::Error),
    /// Not XML, as this codec found.
    #[error("not well-formed XML: {0}")]
    Malformed(&'static str),
    /// XML that an XMPP stream may not carry (RFC 6120 §11).
    #[error("{0}, which an XMPP stream may not carry")]
    Restricted(&'static str),
}

impl XmlError {
    /// The limit this error is about, if it is one.
    fn limit(&self) -> Option<Limit> {
        match self {
            Self::TooLarge => Some(Limit::Size),
            Self::TooDeep => Some(Limit::Depth),
            Self::TooManyNodes => Some(Limit::Nodes),
            _ => None,
        }
    }

    /// The stream error condition (RFC 6120 §4.9.3) to send the server before closing the
    /// stream; `None` when the socket itself failed.
    pub fn condition(&self) -> Option<&'static str> {
        match self {
            Self::Io(_) => None,
            Self::TooLarge | Self::TooDeep | Self::TooManyNodes => Some("policy-violation"),
            Self::Xml(_) | Self::Malformed(_) => Some("not-well-formed"),
            Self::Restricted(_) => Some("restricted-xml"),
        }
    }
}

/// Escapes text or an attribute value, dropping characters XML 1.0 does not allow (quick-xml's
/// `escape` keeps them, and writes `\r` as `&#13;` where this keeps it as it is).
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

/// The kind of a token, with the state of the search for its end.
#[derive(Debug, Clone, Copy)]
enum Token {
    /// Character data, ended by the next `<` (not part of it).
    Text,
    /// A start, end or empty-element tag, ended by a `>` outside quotes.
    Tag(ElementParser),
    /// `<!--…-->`.
    Comment(CommentParser),
    /// `<![CDATA[…]]>`.
    CData,
    /// `<?…?>`: the XML declaration or a processing instruction.
    Pi(PiParser),
}

/// The incomplete token at the start of the read buffer.
#[derive(Debug, Clone, Copy)]
struct Partial {
    token: Token,
    /// Its bytes already searched for its end.
    searched: usize,
}

/// The token being dropped while a stanza is skipped: only the state of the search for its
/// end, and for a tag what says how it changes the depth (its bytes are gone).
#[derive(Debug, Clone, Copy)]
enum SkipToken {
    /// Character data, ended by the next `<`.
    Text,
    /// A tag: `end` for `</…>`; `last`, the last byte searched, is `/` before the `>` of an
    /// empty-element tag.
    Tag {
        parser: ElementParser,
        end: bool,
        last: u8,
    },
    /// `<!--…-->`.
    Comment(CommentParser),
    /// `<![CDATA[…]]>`; `brackets`, the `]` (up to two) that ended the bytes searched.
    CData { brackets: u8 },
    /// `<?…?>`.
    Pi(PiParser),
}

impl SkipToken {
    /// The token at the start of `token` (at least the bytes `classify` looked at), whose
    /// first `searched` bytes were searched without finding its end.
    fn from_partial(partial: Partial, token: &[u8]) -> Self {
        let seen = &token[..partial.searched];
        match partial.token {
            Token::Text => Self::Text,
            Token::Tag(parser) => Self::Tag {
                parser,
                // `classify` saw the byte after `<`.
                end: token.get(1) == Some(&b'/'),
                last: seen.last().copied().unwrap_or(b'<'),
            },
            Token::Comment(p) => Self::Comment(p),
            Token::Pi(p) => Self::Pi(p),
            Token::CData => {
                let body = seen.get(CDATA_OPEN.len()..).unwrap_or_default();
                let brackets = body
                    .iter()
                    .rev()
                    .take(2)
                    .take_while(|b| **b == b']')
                    .count();
                Self::CData {
                    brackets: brackets as u8,
                }
            }
        }
    }

    /// The bytes of `bytes` up to the end of the token (a text's end, the next `<`, not
    /// included), or `None` when it does not end in them and all of them belong to it.
    fn feed(&mut self, bytes: &[u8]) -> Option<usize> {
        match self {
            Self::Text => bytes.iter().position(|b| *b == b'<'),
            Self::Tag { parser, last, .. } => match parser.feed(bytes) {
                Some(i) => {
                    if i > 0 {
                        *last = bytes[i - 1];
                    }
                    Some(i + 1)
                }
                None => {
                    if let Some(b) = bytes.last() {
                        *last = *b;
                    }
                    None
                }
            },
            Self::Comment(p) => p.feed(bytes),
            Self::Pi(p) => p.feed(bytes).map(|i| i + 1),
            Self::CData { brackets } => {
                for (i, b) in bytes.iter().enumerate() {
                    match b {
                        b'>' if *brackets >= 2 => return Some(i + 1),
                        b']' => *brackets = (*brackets + 1).min(2),
                        _ => *brackets = 0,
                    }
                }
                None
            }
        }
    }

    /// The depth after this token, ended, at `depth`.
    fn depth_after(&self, depth: usize) -> Result<usize, XmlError> {
        match self {
            Self::Tag { end: true, .. } => depth
                .checked_sub(1)
                .ok_or(XmlError::Malformed("an end tag without a start tag")),
            Self::Tag { last: b'/', .. } => Ok(depth),
            Self::Tag { .. } => Ok(depth + 1),
            Self::Text | Self::Comment(_) | Self::CData { .. } | Self::Pi(_) => Ok(depth),
        }
    }
}

/// The depth after the complete token `token` at `depth`, while skipping.
fn depth_after(token: &[u8], depth: usize) -> Result<usize, XmlError> {
    match token {
        [b'<', b'/', ..] => depth
            .checked_sub(1)
            .ok_or(XmlError::Malformed("an end tag without a start tag")),
        [b'<', b'!' | b'?', ..] => Ok(depth),
        [b'<', ..] if token.ends_with(b"/>") => Ok(depth),
        [b'<', ..] => Ok(depth + 1),
        _ => Ok(depth),
    }
}

/// The name of the tag at the start of `token`, looked for in its first kilobyte only (so
/// the answer is the same however much of the token has arrived past that); `None` when it
/// is longer.
fn tag_name(token: &[u8]) -> Option<&[u8]> {
    let window = token.get(1..).unwrap_or_default();
    let window = &window[..window.len().min(1024)];
    let end = window
        .iter()
        .position(|b| is_space(*b) || *b == b'/' || *b == b'>')?;
    Some(&window[..end])
}

/// The stanza being skipped.
#[derive(Debug)]
struct Skip {
    /// What is known of it; `bytes` counts as it goes.
    info: Skipped,
    /// Its elements still open.
    depth: usize,
    /// The token being dropped, when its end has not been seen yet.
    token: Option<SkipToken>,
}

const COMMENT_OPEN: &[u8] = b"<!--";
const CDATA_OPEN: &[u8] = b"<![CDATA[";

/// The kind of the token that starts `buf`, and the length of its opening; `None` while
/// the bytes so far could still open a comment or a CDATA section.
fn classify(buf: &[u8]) -> Result<Option<(Token, usize)>, XmlError> {
    if buf.first() != Some(&b'<') {
        return Ok(Some((Token::Text, 0)));
    }
    match buf.get(1) {
        None => Ok(None),
        Some(b'?') => Ok(Some((Token::Pi(PiParser::default()), 2))),
        Some(b'!') => {
            if buf.starts_with(COMMENT_OPEN) {
                Ok(Some((
                    Token::Comment(CommentParser::default()),
                    COMMENT_OPEN.len(),
                )))
            } else if buf.starts_with(CDATA_OPEN) {
                Ok(Some((Token::CData, CDATA_OPEN.len())))
            } else if COMMENT_OPEN.starts_with(buf) || CDATA_OPEN.starts_with(buf) {
                Ok(None)
            } else {
                Err(XmlError::Restricted("a DTD or markup declaration"))
            }
        }
        Some(_) => Ok(Some((Token::Tag(ElementParser::default()), 1))),
    }
}

/// XML's whitespace (not Unicode's).
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// A rough XML `Name` check (quick-xml does not check names): not empty, no ASCII
/// punctuation other than `.`, `-`, `_` and `:`, not starting with a digit, `.` or `-`.
fn valid_name(name: &str) -> bool {
    let ok = |b: &u8| !b.is_ascii() || b.is_ascii_alphanumeric() || b"._:-".contains(b);
    let bytes = name.as_bytes();
    bytes
        .first()
        .is_some_and(|b| !b.is_ascii_digit() && !b".-".contains(b))
        && bytes.iter().all(ok)
}

/// Decodes the inbound stream into [`Frame`]s; encodes raw XML strings.
///
/// It keeps the state of the stanza being read between reads (see the module notes), so a
/// stream needs one codec for its life: moving the read buffer elsewhere means moving the
/// codec along (`FramedParts::codec`).
#[derive(Debug, Default)]
pub struct XmlCodec {
    /// The incomplete token at the start of the buffer.
    partial: Option<Partial>,
    /// The open elements of the stanza being read, outermost first.
    open: Vec<Element>,
    /// Bytes of that stanza consumed from the buffer so far.
    stanza_len: usize,
    /// Its nodes so far.
    nodes: usize,
    /// Namespace bindings in scope: the stream header's, then the open elements'. Made on
    /// first use, so that a codec can be a constant.
    scope: Option<NamespaceResolver>,
    /// Bytes examined: searched for a token's end, or parsed.
    examined: u64,
    /// The stanza being skipped, if one is.
    skip: Option<Skip>,
}

/// A fresh codec, for callers that still write `XmlCodec` as a value from when the codec
/// was a stateless unit struct. Prefer `XmlCodec::default()`.
#[allow(non_upper_case_globals)]
pub const XmlCodec: XmlCodec = XmlCodec::new();

impl XmlCodec {
    /// A codec for a new stream.
    pub const fn new() -> Self {
        Self {
            partial: None,
            open: Vec::new(),
            stanza_len: 0,
            nodes: 0,
            scope: None,
            examined: 0,
            skip: None,
        }
    }

    /// Whether a stanza over a limit is being skipped (its end not read yet).
    pub fn skipping(&self) -> bool {
        self.skip.is_some()
    }

    /// Bytes examined so far, searching for the end of a token or parsing one: the
    /// decoder's work, which stays proportional to the bytes decoded however they are
    /// split into reads.
    pub fn bytes_examined(&self) -> u64 {
        self.examined
    }

    fn scope(&mut self) -> &mut NamespaceResolver {
        self.scope.get_or_insert_with(NamespaceResolver::default)
    }

    /// Whether the stanza being read (or the token between stanzas) would be over the
    /// size limit with `len` more bytes.
    fn over_size(&self, len: usize) -> bool {
        let total = if self.open.is_empty() {
            len
        } else {
            self.stanza_len + len
        };
        total > MAX_STANZA
    }

    fn add_node(&mut self) -> Result<(), XmlError> {
        self.nodes += 1;
        if self.nodes > MAX_NODES {
            return Err(XmlError::TooManyNodes);
        }
        Ok(())
    }

    /// The length of the token at the start of `src` when it is complete, searching only
    /// the bytes not searched before. Sizes are the caller's to check.
    fn token_end(&mut self, src: &[u8]) -> Result<Option<usize>, XmlError> {
        let mut partial = match self.partial.take() {
            Some(p) => p,
            None => match classify(src)? {
                Some((token, opening)) => {
                    self.examined += opening.max(1) as u64;
                    Partial {
                        token,
                        searched: opening,
                    }
                }
                None => {
                    // Fewer bytes than `<![CDATA[`, looked at again with the next read.
                    self.examined += src.len() as u64;
                    return Ok(None);
                }
            },
        };
        let from = partial.searched;
        let new = &src[from..];
        let end = match &mut partial.token {
            Token::Text => new.iter().position(|b| *b == b'<').map(|i| from + i),
            Token::Tag(p) => p.feed(new).map(|i| from + i + 1),
            Token::Comment(p) => p.feed(new).map(|i| from + i),
            Token::Pi(p) => p.feed(new).map(|i| from + i + 1),
            Token::CData => {
                // `]]>` may straddle the previous search's end.
                let at = from.saturating_sub(2).max(CDATA_OPEN.len());
                src[at..]
                    .windows(3)
                    .position(|w| w == b"]]>")
                    .map(|i| at + i + 3)
            }
        };
        match end {
            Some(end) => {
                self.examined += (end - from) as u64;
                Ok(Some(end))
            }
            None => {
                self.examined += new.len() as u64;
                partial.searched = src.len();
                self.partial = Some(partial);
                Ok(None)
            }
        }
    }

    /// Adds a complete token to the stanza being read; the frame it completes, if any.
    fn apply(&mut self, token: &[u8]) -> Result<Option<Frame>, XmlError> {
        self.examined += token.len() as u64;
        if token.first() != Some(&b'<') {
            let text = std::str::from_utf8(token).map_err(quick_xml::Error::from)?;
            let text = unescape(text).map_err(quick_xml::Error::from)?;
            self.add_text(&text)?;
            return Ok(None);
        }
        let mut reader = Reader::from_reader(token);
        // The codec matches end tags itself: the reader sees one token at a time.
        reader.config_mut().check_end_names = false;
        reader.config_mut().allow_unmatched_ends = true;
        match reader.read_event()? {
            Event::Start(start) => self.start(&start, false),
            Event::Empty(start) => self.start(&start, true),
            Event::End(end) => self.end(end.name().as_ref()),
            Event::CData(data) => {
                self.add_text(&data.into_inner())?;
                Ok(None)
            }
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) => Ok(None),
            Event::DocType(_) => Err(XmlError::Restricted("a DTD")),
            Event::Text(_) | Event::GeneralRef(_) | Event::Eof => {
                Err(XmlError::Malformed("an incomplete token"))
            }
        }
    }

    fn add_text(&mut self, text: &str) -> Result<(), XmlError> {
        if self.open.is_empty() {
            return Err(XmlError::Restricted("character data between stanzas"));
        }
        if text.is_empty() {
            return Ok(());
        }
        let merged = match self.open.last_mut().and_then(|e| e.children.last_mut()) {
            Some(Node::Text(t)) => {
                t.push_str(text);
                true
            }
            _ => false,
        };
        if !merged {
            self.add_node()?;
            if let Some(parent) = self.open.last_mut() {
                parent.children.push(Node::Text(text.to_owned()));
            }
        }
        Ok(())
    }

    /// An element from its start tag, with its namespace resolved in the current scope.
    fn element(&mut self, start: &BytesStart<'_>) -> Result<Element, XmlError> {
        let name = start.name().as_ref().to_owned();
        if !valid_name(&name) {
            return Err(XmlError::Malformed("a tag without a valid name"));
        }
        let ns = match self.scope().resolve_element(start.name()).0 {
            ResolveResult::Bound(ns) => ns.as_ref().to_owned(),
            ResolveResult::Unbound | ResolveResult::Unknown(_) => String::new(),
        };
        let mut attrs = Vec::new();
        for attr in start.attributes() {
            let attr = attr.map_err(quick_xml::Error::from)?;
            self.add_node()?;
            let key = attr.key.as_ref();
            if !valid_name(key) {
                return Err(XmlError::Malformed("an attribute without a valid name"));
            }
            let value = unescape(&attr.value).map_err(quick_xml::Error::from)?;
            attrs.push((key.to_owned(), value.into_owned()));
        }
        Ok(Element {
            name,
            ns,
            attrs,
            children: Vec::new(),
        })
    }

    fn start(&mut self, start: &BytesStart<'_>, empty: bool) -> Result<Option<Frame>, XmlError> {
        if self.open.is_empty() && start.local_name().as_ref() == "stream" {
            // A stream header (or a restart): its declarations are the scope of every
            // stanza until the next header.
            let scope = self.scope.insert(NamespaceResolver::default());
            scope.push(start).map_err(quick_xml::Error::from)?;
            let header = self.element(start)?;
            return Ok(Some(Frame::StreamOpen(header)));
        }
        if self.open.len() >= MAX_DEPTH {
            return Err(XmlError::TooDeep);
        }
        self.add_node()?;
        self.scope().push(start).map_err(quick_xml::Error::from)?;
        let element = match self.element(start) {
            Ok(element) => element,
            Err(e) => {
                // Its declarations go with it (the stanza may be skipped and the stream
                // read on).
                self.scope().pop();
                return Err(e);
            }
        };
        if empty {
            self.scope().pop();
            return Ok(self.close(element));
        }
        self.open.push(element);
        Ok(None)
    }

    fn end(&mut self, name: &str) -> Result<Option<Frame>, XmlError> {
        let Some(element) = self.open.pop() else {
            if local(name) == "stream" {
                self.scope = None;
                return Ok(Some(Frame::StreamClose));
            }
            return Err(
                quick_xml::Error::from(IllFormedError::UnmatchedEndTag(name.to_owned())).into(),
            );
        };
        if element.name != name {
            return Err(quick_xml::Error::from(IllFormedError::MismatchedEndTag {
                expected: element.name,
                found: name.to_owned(),
            })
            .into());
        }
        self.scope().pop();
        Ok(self.close(element))
    }

    /// Adds a finished element to its parent; the stanza when it has none.
    fn close(&mut self, element: Element) -> Option<Frame> {
        match self.open.last_mut() {
            Some(parent) => {
                parent.children.push(Node::Element(element));
                None
            }
            None => Some(Frame::Stanza(element)),
        }
    }
}

impl XmlCodec {
    /// Starts skipping the stanza being read, which went over `limit` with the token at
    /// the start of `src`: `Some(len)` when that token is complete (and `len` long), `None`
    /// when it is not (all of `src` is of it, searched). What was read of the stanza is
    /// dropped but for its name and a few attributes; so is the token.
    fn begin_skip(
        &mut self,
        limit: Limit,
        src: &mut BytesMut,
        complete: Option<usize>,
    ) -> Result<(), XmlError> {
        let mut info = Skipped {
            limit,
            bytes: 0,
            name: String::new(),
            from: None,
            kind: None,
            id: None,
        };
        match self.open.first() {
            Some(top) => {
                let short = |name: &str| {
                    top.attr(name)
                        .filter(|v| v.len() <= MAX_SKIPPED_ATTR)
                        .map(str::to_owned)
                };
                info.from = short("from");
                info.kind = short("type");
                info.id = short("id");
                info.name = std::mem::take(&mut self.open[0].name);
                info.bytes = self.stanza_len as u64;
            }
            None => {
                // The token that went over is itself a top-level one: the stanza's start
                // tag (or a comment or processing instruction between stanzas). A stream
                // header or an end tag here cannot be skipped.
                if src.starts_with(b"</") {
                    return Err(limit.error());
                }
                if src.first() == Some(&b'<') && !matches!(src.get(1), Some(b'!' | b'?')) {
                    if let Some(name) = tag_name(src) {
                        let name = String::from_utf8_lossy(name).into_owned();
                        if local(&name) == "stream" {
                            return Err(limit.error());
                        }
                        info.name = name;
                    }
                }
            }
        }
        for _ in 0..self.open.len() {
            self.scope().pop();
        }
        let mut depth = self.open.len();
        self.open = Vec::new();
        self.nodes = 0;
        self.stanza_len = 0;
        let token = match complete {
            Some(len) => {
                depth = depth_after(&src[..len], depth)?;
                info.bytes += len as u64;
                src.advance(len);
                None
            }
            None => match self.partial.take() {
                Some(partial) => {
                    let token = SkipToken::from_partial(partial, src);
                    info.bytes += partial.searched as u64;
                    src.advance(partial.searched);
                    Some(token)
                }
                // Not yet told what kind of token (a few bytes); they stay in `src`.
                None => None,
            },
        };
        self.skip = Some(Skip { info, depth, token });
        Ok(())
    }

    /// Reads on through the stanza being skipped, dropping what it reads: the frame that
    /// says it was skipped, once its end is read.
    fn skip_on(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, XmlError> {
        let Some(skip) = self.skip.as_mut() else {
            return Ok(None);
        };
        loop {
            let mut token = match skip.token.take() {
                Some(token) => token,
                None if skip.depth == 0 => break,
                None => {
                    if src.is_empty() {
                        return Ok(None);
                    }
                    // A DTD in a skipped stanza still closes the stream.
                    let Some((kind, opening)) = classify(src)? else {
                        // Fewer bytes than `<![CDATA[`: looked at again with the next read.
                        return Ok(None);
                    };
                    let token = SkipToken::from_partial(
                        Partial {
                            token: kind,
                            searched: opening,
                        },
                        src,
                    );
                    self.examined += opening as u64;
                    skip.info.bytes += opening as u64;
                    src.advance(opening);
                    token
                }
            };
            match token.feed(src) {
                Some(len) => {
                    skip.depth = token.depth_after(skip.depth)?;
                    self.examined += len as u64;
                    skip.info.bytes += len as u64;
                    src.advance(len);
                }
                None => {
                    self.examined += src.len() as u64;
                    skip.info.bytes += src.len() as u64;
                    src.clear();
                    skip.token = Some(token);
                    return Ok(None);
                }
            }
        }
        let info = self.skip.take().map(|s| s.info);
        Ok(info.map(Frame::Skipped))
    }
}

impl Decoder for XmlCodec {
    type Item = Frame;
    type Error = XmlError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, XmlError> {
        loop {
            if self.skip.is_some() {
                return self.skip_on(src);
            }
            if self.open.is_empty() && self.partial.is_none() {
                // Between stanzas: whitespace keepalives are dropped as they come.
                let spaces = src.iter().take_while(|b| is_space(**b)).count();
                self.examined += spaces as u64;
                src.advance(spaces);
                match src.first() {
                    None => return Ok(None),
                    Some(b'<') => {}
                    Some(_) => return Err(XmlError::Restricted("character data between stanzas")),
                }
            }
            let Some(len) = self.token_end(src)? else {
                // Incomplete: all of `src` is (the start of) one token.
                if self.over_size(src.len()) {
                    self.begin_skip(Limit::Size, src, None)?;
                    continue;
                }
                return Ok(None);
            };
            if self.over_size(len) {
                self.begin_skip(Limit::Size, src, Some(len))?;
                continue;
            }
            let frame = match self.apply(&src[..len]) {
                Ok(frame) => frame,
                Err(e) => match e.limit() {
                    Some(limit) => {
                        self.begin_skip(limit, src, Some(len))?;
                        continue;
                    }
                    None => return Err(e),
                },
            };
            src.advance(len);
            if self.open.is_empty() {
                self.stanza_len = 0;
                self.nodes = 0;
            } else {
                self.stanza_len += len;
            }
            if frame.is_some() {
                return Ok(frame);
            }
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

    /// Frames decoded from `parts` in turn, up to the first error (and that error), and the
    /// codec's work.
    fn decode_parts<'a>(
        parts: impl IntoIterator<Item = &'a [u8]>,
    ) -> (Vec<Frame>, Option<String>, u64) {
        let mut codec = XmlCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for part in parts {
            buf.extend_from_slice(part);
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => out.push(f),
                    Ok(None) => break,
                    Err(e) => return (out, Some(e.to_string()), codec.bytes_examined()),
                }
            }
        }
        (out, None, codec.bytes_examined())
    }

    fn whole(input: &[u8]) -> (Vec<Frame>, Option<String>) {
        let (frames, error, _) = decode_parts([input]);
        (frames, error)
    }

    fn byte_by_byte(input: &[u8]) -> (Vec<Frame>, Option<String>) {
        let (frames, error, _) = decode_parts(input.chunks(1));
        (frames, error)
    }

    fn stanza(input: &str) -> Element {
        match whole(input.as_bytes()) {
            (frames, None) => match frames.as_slice() {
                [Frame::Stanza(e)] => e.clone(),
                other => panic!("not one stanza: {other:?}"),
            },
            (_, Some(e)) => panic!("{input}: {e}"),
        }
    }

    fn error(input: &[u8]) -> String {
        match whole(input) {
            (_, Some(e)) => e,
            (frames, None) => panic!("no error, frames {frames:?}"),
        }
    }

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
        xmlns:stream='http://etherx.jabber.org/streams' id='x1' from=\"localhost\" \
        version='1.0' xml:lang='en'>";

    /// A session as prosody sends one, with what XML allows on top.
    fn session() -> String {
        format!(
            "{HEADER}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>\n \
             <message from='a@b/c' type='chat' id=\"q'1\"><body>1 &lt; 2 &amp; &#233;t&#xE9; ü \
             <![CDATA[<b>&amp;</b>]]> x<!-- a > comment -->y</body>\
             <x xmlns='urn:x' a='&quot;&gt;'/></message>\
             <presence from='ops@conference.localhost/alice'><x xmlns='http://jabber.org/protocol/muc#user'>\
             <item jid='alice@localhost/phone' role='participant'/></x></presence>\
             <iq type='get' id='p1'><ping xmlns='urn:xmpp:ping'/></iq> \
             <stream:error><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>\
             </stream:stream>"
        )
    }

    #[test]
    fn a_stream_decodes_into_header_stanzas_and_close() {
        let (f, error) = byte_by_byte(session().as_bytes());
        assert_eq!(error, None);
        assert_eq!(f.len(), 7, "{f:?}");
        let Frame::StreamOpen(open) = &f[0] else {
            panic!("{f:?}")
        };
        assert_eq!(open.attr("id"), Some("x1"));
        assert_eq!(open.attr("from"), Some("localhost"));
        assert_eq!(open.attr("xml:lang"), Some("en"));
        assert_eq!(open.ns, NS_STREAMS);
        let Frame::Stanza(features) = &f[1] else {
            panic!("{f:?}")
        };
        assert_eq!(features.local_name(), "features");
        assert_eq!(features.ns, NS_STREAMS);
        let mech = features
            .child_ns("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .and_then(|m| m.child("mechanism"));
        assert_eq!(mech.map(Element::text).as_deref(), Some("PLAIN"));
        // Namespaces are inherited: the mechanism from its parent, features from the header.
        assert_eq!(
            mech.map(|m| m.ns.as_str()),
            Some("urn:ietf:params:xml:ns:xmpp-sasl")
        );
        let Frame::Stanza(msg) = &f[2] else {
            panic!("{f:?}")
        };
        assert_eq!(msg.ns, "jabber:client");
        assert_eq!(msg.attr("id"), Some("q'1"));
        assert_eq!(
            msg.child("body").map(Element::text).as_deref(),
            Some("1 < 2 & été ü <b>&amp;</b> xy")
        );
        assert_eq!(
            msg.child_ns("x", "urn:x").and_then(|x| x.attr("a")),
            Some("\">")
        );
        let Frame::Stanza(presence) = &f[3] else {
            panic!("{f:?}")
        };
        let item = presence
            .child_ns("x", "http://jabber.org/protocol/muc#user")
            .and_then(|x| x.child("item"));
        assert_eq!(
            item.and_then(|i| i.attr("jid")),
            Some("alice@localhost/phone")
        );
        let Frame::Stanza(iq) = &f[4] else {
            panic!("{f:?}")
        };
        assert!(iq.child_ns("ping", "urn:xmpp:ping").is_some());
        assert!(iq.child_ns("ping", "jabber:client").is_none());
        let Frame::Stanza(err) = &f[5] else {
            panic!("{f:?}")
        };
        assert_eq!((err.local_name(), err.ns.as_str()), ("error", NS_STREAMS));
        assert_eq!(f[6], Frame::StreamClose);
    }

    #[test]
    fn stanzas_need_no_header_and_an_empty_element_is_a_stanza() {
        assert_eq!(
            stanza("<presence/>"),
            Element {
                name: "presence".into(),
                ..Element::default()
            }
        );
        // Without a header the `stream` prefix is undeclared: no namespace, no error.
        let e = stanza("<stream:error><conflict/></stream:error>");
        assert_eq!((e.local_name(), e.ns.as_str()), ("error", ""));
    }

    #[test]
    fn prefixes_resolve_to_their_declared_namespace() {
        let e = stanza(
            "<stream:features xmlns:stream='http://etherx.jabber.org/streams' xmlns:s='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <s:mechanisms><s:mechanism>PLAIN</s:mechanism></s:mechanisms>\
             <bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>",
        );
        assert_eq!(e.ns, NS_STREAMS);
        let mechanisms = e
            .child_ns("mechanisms", "urn:ietf:params:xml:ns:xmpp-sasl")
            .expect("a prefixed child is found by its namespace");
        assert_eq!(
            mechanisms.child("mechanism").map(Element::text).as_deref(),
            Some("PLAIN")
        );
        assert!(e
            .child_ns("bind", "urn:ietf:params:xml:ns:xmpp-bind")
            .is_some());
    }

    #[test]
    fn a_restarted_stream_gets_the_new_headers_namespaces() {
        let input =
            "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
             <message/><?xml version='1.0'?>\
             <stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'>\
             <message/></stream:stream>";
        let (f, error) = byte_by_byte(input.as_bytes());
        assert_eq!(error, None);
        let ns: Vec<&str> = f
            .iter()
            .filter_map(|f| match f {
                Frame::Stanza(e) => Some(e.ns.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(ns, ["jabber:client", "jabber:server"]);
        assert_eq!(f.last(), Some(&Frame::StreamClose));
    }

    #[test]
    fn a_stream_split_at_every_byte_decodes_the_same() {
        let input = session();
        let bytes = input.as_bytes();
        let expected = whole(bytes);
        assert_eq!(expected.1, None);
        assert_eq!(byte_by_byte(bytes), expected);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            let (frames, error, _) = decode_parts([a, b]);
            assert_eq!((frames, error), expected, "split at {at}");
        }
    }

    #[test]
    fn bad_xml_is_an_error_not_a_panic() {
        for input in [
            &b"<a></b>"[..],
            b"<a x=1/>",
            b"<a x='1' x='2'/>",
            b"<a>&bogus;</a>",
            b"<a>&amp</a>",
            b"<a>&#0;</a>",
            b"<a>&#xD800;</a>",
            b"<a x='1' <b>",
            b"<a<b>",
            b"<>",
            b"< a/>",
            b"</a>",
            b"hello<a/>",
            b"<a/>text",
            b"<![CDATA[x]]>",
            b"<!DOCTYPE a [<!ENTITY b 'c'>]><a>&b;</a>",
            b"<!ELEMENT a>",
            b"<a>\xff</a>",
            b"<a x='\xc3'/>",
        ] {
            let mut buf = BytesMut::from(input);
            let mut codec = XmlCodec::default();
            let result = loop {
                match codec.decode(&mut buf) {
                    Ok(Some(_)) => {}
                    other => break other,
                }
            };
            assert!(result.is_err(), "{}", String::from_utf8_lossy(input));
            // The same in one-byte reads.
            assert!(
                byte_by_byte(input).1.is_some(),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn any_cut_or_mangled_stream_decodes_the_same_whole_and_byte_by_byte() {
        // Every prefix of the session, and the session with each byte replaced by `<` and
        // by one of XML's other special characters in turn: never a panic, and the same
        // frames and error however the bytes arrive.
        let input = session().into_bytes();
        for end in 0..=input.len() {
            let cut = &input[..end];
            assert_eq!(whole(cut), byte_by_byte(cut), "cut at {end}");
        }
        let specials = b"<>&'\"/!?]-\xff";
        for at in 0..input.len() {
            for b in [b'<', specials[at % specials.len()]] {
                let mut mangled = input.clone();
                mangled[at] = b;
                assert_eq!(
                    whole(&mangled),
                    byte_by_byte(&mangled),
                    "{:?} at {at}",
                    b as char
                );
            }
        }
    }

    /// What [`feed`] saw.
    #[derive(Debug, PartialEq)]
    struct Fed {
        frames: Vec<Frame>,
        error: Option<String>,
        /// The most bytes left in the buffer after a `decode` that left the codec skipping.
        most_buffered_skipping: usize,
        /// The read buffer's largest capacity after a read, while skipping.
        most_capacity_skipping: usize,
    }

    /// Decodes `input` in reads of `read` bytes into one buffer, as `FramedRead` does.
    fn feed(input: &[u8], read: usize) -> Fed {
        let mut codec = XmlCodec::default();
        let mut buf = BytesMut::new();
        let mut fed = Fed {
            frames: Vec::new(),
            error: None,
            most_buffered_skipping: 0,
            most_capacity_skipping: 0,
        };
        for chunk in input.chunks(read) {
            if codec.skipping() {
                // What `FramedRead` does: make room for a read, then read into it.
                buf.reserve(read);
            }
            buf.extend_from_slice(chunk);
            if codec.skipping() {
                fed.most_capacity_skipping = fed.most_capacity_skipping.max(buf.capacity());
            }
            loop {
                match codec.decode(&mut buf) {
                    Ok(Some(f)) => fed.frames.push(f),
                    Ok(None) => break,
                    Err(e) => {
                        fed.error = Some(e.to_string());
                        return fed;
                    }
                }
            }
            if codec.skipping() {
                assert!(codec.open.is_empty(), "a skipped stanza's tree is kept");
                fed.most_buffered_skipping = fed.most_buffered_skipping.max(buf.len());
            }
        }
        fed
    }

    /// The one skipped stanza among `frames`, with the stanza after it.
    fn skipped_then(frames: &[Frame], next: &str) -> Skipped {
        match frames {
            [Frame::Skipped(s), Frame::Stanza(e)] => {
                assert_eq!(e.attr("id"), Some(next), "{e:?}");
                s.clone()
            }
            other => panic!("not a skipped stanza and then {next}: {other:?}"),
        }
    }

    const NEXT: &str = "<message from='alice@localhost/p' type='chat' id='next'><body>!st2 run date</body></message>";

    #[test]
    fn nesting_up_to_the_limit_is_read_and_a_nesting_bomb_is_skipped() {
        let nested = |depth: usize| {
            format!(
                "<message from='a@b/c' type='chat'>{}x{}</message>",
                "<a b='c'>".repeat(depth - 1),
                "</a>".repeat(depth - 1)
            )
        };
        let mut e = stanza(&nested(MAX_DEPTH));
        for _ in 1..MAX_DEPTH {
            e = e.child("a").expect("nested").clone();
        }
        assert_eq!(e.text(), "x");

        // One level too deep, and an empty element one level too deep: skipped, and the
        // next stanza is read.
        let over = nested(MAX_DEPTH + 1);
        let empty = format!(
            "<m>{}<a/>{}</m>",
            "<a>".repeat(MAX_DEPTH - 1),
            "</a>".repeat(MAX_DEPTH - 1)
        );
        for (input, name) in [(over.as_str(), "message"), (empty.as_str(), "m")] {
            let all = format!("{input} {NEXT}");
            let (frames, error) = whole(all.as_bytes());
            assert_eq!(error, None);
            let s = skipped_then(&frames, "next");
            assert_eq!(
                (s.limit, s.name.as_str(), s.bytes),
                (Limit::Depth, name, input.len() as u64)
            );
            assert_eq!(byte_by_byte(all.as_bytes()), (frames, None));
        }

        // A bomb: a million levels, in 1 KiB reads. Skipping counts the depth (no tree, no
        // recursion), drops what it reads and finds the stanza's end.
        let bomb = format!(
            "<message from='mallory@localhost/x' type='chat' id='bomb'>{}{}</message>{NEXT}",
            "<a>".repeat(1_000_000),
            "</a>".repeat(1_000_000)
        );
        let fed = feed(bomb.as_bytes(), 1024);
        assert_eq!(fed.error, None);
        let s = skipped_then(&fed.frames, "next");
        assert_eq!(
            s,
            Skipped {
                limit: Limit::Depth,
                bytes: (bomb.len() - NEXT.len()) as u64,
                name: "message".into(),
                from: Some("mallory@localhost/x".into()),
                kind: Some("chat".into()),
                id: Some("bomb".into()),
            }
        );
        assert!(
            fed.most_buffered_skipping <= 1024,
            "{} buffered",
            fed.most_buffered_skipping
        );
        assert!(fed.most_capacity_skipping <= 4 * 1024);
    }

    #[test]
    fn a_stanza_over_the_size_limit_is_skipped_whole_or_byte_by_byte() {
        let open = "<message from='mallory@localhost/x' type='chat' id='big'><body>";
        let close = "</body></message>";
        // Exactly the limit is read; one byte more is skipped, and the next stanza is read.
        let fits = format!(
            "{open}{}{close}",
            "x".repeat(MAX_STANZA - open.len() - close.len())
        );
        assert_eq!(fits.len(), MAX_STANZA);
        assert_eq!(
            stanza(&fits).child("body").map(|b| b.text().len()),
            Some(MAX_STANZA - open.len() - close.len())
        );
        let over = format!(
            "{open}{}{close}",
            "x".repeat(MAX_STANZA + 1 - open.len() - close.len())
        );
        let expected = Skipped {
            limit: Limit::Size,
            bytes: over.len() as u64,
            name: "message".into(),
            from: Some("mallory@localhost/x".into()),
            kind: Some("chat".into()),
            id: Some("big".into()),
        };
        let input = format!("{over}{NEXT}");
        let (frames, error) = whole(input.as_bytes());
        assert_eq!(error, None);
        assert_eq!(skipped_then(&frames, "next"), expected);
        assert_eq!(byte_by_byte(input.as_bytes()), (frames, None));

        // One giant token (text, an attribute value of the stanza or of a child, CDATA, a
        // comment) of twice the limit, in one-byte reads: once over the limit it is
        // dropped as it arrives.
        let giant = "y".repeat(2 * MAX_STANZA);
        let inputs = [
            format!("{open}{giant}{close}"),
            format!("<message from='m@l/x' a='{giant}'><body>b</body></message>"),
            format!("<message><x a=\"{giant}\"/><x/></message>"),
            format!("<message><![CDATA[{giant}]]]]></message>"),
            format!("<message><!--{giant}--></message>"),
        ];
        for stanza in &inputs {
            let input = format!("{stanza}{NEXT}");
            let fed = feed(input.as_bytes(), 1);
            assert_eq!(fed.error, None);
            let s = skipped_then(&fed.frames, "next");
            assert_eq!((s.limit, s.bytes), (Limit::Size, stanza.len() as u64));
            assert_eq!(s.name, "message");
            assert!(
                fed.most_buffered_skipping <= 8,
                "{}",
                fed.most_buffered_skipping
            );
            // And whole, in one read: the same.
            let (frames, error) = whole(input.as_bytes());
            assert_eq!((frames, error), (fed.frames, None));
        }
        // The stanza's own start tag over the limit: skipped, its attributes unknown.
        let fed = feed(format!("{}{NEXT}", inputs[1]).as_bytes(), 4096);
        let s = skipped_then(&fed.frames, "next");
        assert_eq!((s.name.as_str(), s.from), ("message", None));
    }

    #[test]
    fn skipping_keeps_no_more_than_a_read() {
        // 5 MiB stanzas — text, one attribute, many elements, a comment — in 4 KiB reads,
        // then a stanza that is read: the buffer holds at most the limit and a read before
        // the limit is hit, at most a read after, and its capacity stays near the limit.
        let big = 5 * MAX_STANZA;
        let read = 4096;
        let tag = format!("<b c='{}'>t</b>", "d".repeat(200));
        for stanza in [
            format!("<message><body>{}</body></message>", "y".repeat(big)),
            format!("<message><x a='{}'/></message>", "y".repeat(big)),
            format!("<message>{}</message>", tag.repeat(big / tag.len())),
            format!("<message><!--{}--></message>", "y".repeat(big)),
        ] {
            let input = format!("{stanza}{NEXT}");
            let fed = feed(input.as_bytes(), read);
            assert_eq!(fed.error, None);
            let s = skipped_then(&fed.frames, "next");
            assert_eq!(s.bytes, stanza.len() as u64);
            assert!(
                fed.most_buffered_skipping < read,
                "{} buffered while skipping",
                fed.most_buffered_skipping
            );
            assert!(
                fed.most_capacity_skipping <= 2 * MAX_STANZA + 2 * read,
                "capacity {} while skipping",
                fed.most_capacity_skipping
            );
        }
    }

    #[test]
    fn many_small_stanzas_in_one_read_are_not_one_big_stanza() {
        let one =
            "<message from='alice@localhost/p' type='chat'><body>!st2 run date</body></message> ";
        let input = one.repeat(2 * MAX_STANZA / one.len());
        let (frames, error, examined) = decode_parts([input.as_bytes()]);
        assert_eq!(error, None);
        assert_eq!(frames.len(), 2 * MAX_STANZA / one.len());
        assert!(frames.iter().all(|f| matches!(f, Frame::Stanza(_))));
        assert!(
            examined <= 3 * input.len() as u64,
            "{examined} for {}",
            input.len()
        );
    }

    #[test]
    fn a_node_bomb_is_skipped() {
        let ok = format!("<m>{}</m>", "<a/>".repeat(MAX_NODES - 1));
        assert!(matches!(whole(ok.as_bytes()), (_, None)));
        let over = format!("<m id='x'>{}</m>", "<a/>".repeat(MAX_NODES));
        let attrs: String = (0..MAX_NODES).map(|i| format!(" a{i}=''")).collect();
        let many_attrs = format!("<m{attrs}/>");
        let text = format!("<m>{}</m>", "<a/>t".repeat(MAX_NODES / 2 + 1));
        // A bomb well within the size limit: 100,000 empty elements.
        let bomb = format!("<message id='b'>{}</message>", "<a/>".repeat(100_000));
        for input in [over, many_attrs, text, bomb] {
            let all = format!("{input}{NEXT}");
            let (frames, error) = whole(all.as_bytes());
            assert_eq!(error, None);
            let s = skipped_then(&frames, "next");
            assert_eq!((s.limit, s.bytes), (Limit::Nodes, input.len() as u64));
            let fed = feed(all.as_bytes(), 7);
            assert_eq!((fed.frames, fed.error), (frames, None));
        }
        // The count is per stanza.
        let (frames, error, _) = decode_parts([ok.repeat(3).as_bytes()]);
        assert_eq!((frames.len(), error), (3, None));
    }

    #[test]
    fn a_skipped_stanza_reads_the_same_however_it_is_split() {
        // Every kind of token, with `>`, `/>`, `]]>` and `-->` where they do not end it,
        // inside a stanza too deep to read; the namespaces after it are the header's.
        let deep = format!(
            "<message from='a@b/c' type='groupchat' xmlns:p='urn:p'>{}\
             <x a='>/>' b=\"'/>\"/><p:y>t &amp; <![CDATA[]]]>]]>u<!-- -> -- ->--><?pi ? > ?>v</p:y>\
             <z\n/>{}</message>",
            "<a>".repeat(MAX_DEPTH),
            "</a>".repeat(MAX_DEPTH)
        );
        let input = format!("{HEADER}{deep}\n<presence id='next'/><p:x id='p'/></stream:stream>");
        let bytes = input.as_bytes();
        let expected = whole(bytes);
        assert_eq!(expected.1, None);
        let [Frame::StreamOpen(_), Frame::Skipped(s), Frame::Stanza(next), Frame::Stanza(p), Frame::StreamClose] =
            expected.0.as_slice()
        else {
            panic!("{expected:?}")
        };
        assert_eq!((s.limit, s.bytes), (Limit::Depth, deep.len() as u64));
        assert_eq!(s.kind.as_deref(), Some("groupchat"));
        assert_eq!(
            (next.attr("id"), next.ns.as_str()),
            (Some("next"), "jabber:client")
        );
        // `p` was declared on the skipped stanza only.
        assert_eq!(p.ns, "");
        assert_eq!(byte_by_byte(bytes), expected);
        for at in 0..=bytes.len() {
            let (a, b) = bytes.split_at(at);
            let (frames, error, _) = decode_parts([a, b]);
            assert_eq!((frames, error), expected, "split at {at}");
        }
    }

    #[test]
    fn a_skipped_stanza_with_a_dtd_or_a_stream_header_over_the_limit_is_an_error() {
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        for input in [
            format!("<m>{deep}<!DOCTYPE x></m>"),
            format!("<m>{deep}<!ENTITY x 'y'></m>"),
        ] {
            let (_, error) = whole(input.as_bytes());
            assert!(error.is_some_and(|e| e.contains("DTD")), "{input}");
            assert!(byte_by_byte(input.as_bytes()).1.is_some());
        }
        // A stream header cannot be skipped.
        let header = format!(
            "<stream:stream xmlns='jabber:client' a='{}'>",
            "x".repeat(MAX_STANZA)
        );
        let err = error(header.as_bytes());
        assert!(
            err.contains("stream header or end tag larger than the limit"),
            "{err}"
        );
        let attrs: String = (0..=MAX_NODES).map(|i| format!(" a{i}=''")).collect();
        let err = error(format!("<stream:stream{attrs}>").as_bytes());
        assert!(err.contains("limit"), "{err}");
        assert_eq!(XmlError::TooLarge.condition(), Some("policy-violation"));
    }

    #[test]
    fn reading_one_byte_at_a_time_is_linear() {
        // A stanza of nearly the limit in one-byte reads. The previous reader parsed the
        // buffer from its start after every read: ~5 * 10^11 bytes of work for this. Now
        // each byte is searched once and parsed once (and a token costs a byte or two to tell
        // its kind); the work is checked after every read, so a quadratic reader fails
        // within the first few kilobytes.
        let fill = MAX_STANZA - 300;
        let body = format!("<message><body>{}</body></message>", "é".repeat(fill / 2));
        let attr = format!("<message><x a='{}'/></message>", "y>\"".repeat(fill / 3));
        let tag = format!("<b c='{}'>e</b>", "d".repeat(200));
        let tags = format!("<message>{}</message>", tag.repeat(fill / tag.len()));
        let cdata = format!("<message><![CDATA[{}]]></message>", "]]".repeat(fill / 2));
        let comment = format!("<message><!--{}--></message>", "->-".repeat(fill / 3));
        for input in [body, attr, tags, cdata, comment] {
            let mut codec = XmlCodec::default();
            let mut buf = BytesMut::new();
            let mut frames = 0;
            for (fed, byte) in input.as_bytes().chunks(1).enumerate() {
                buf.extend_from_slice(byte);
                while let Some(frame) = codec.decode(&mut buf).expect("valid") {
                    assert!(matches!(frame, Frame::Stanza(_)));
                    frames += 1;
                }
                let work = codec.bytes_examined();
                let read = fed as u64 + 1;
                assert!(
                    work <= 3 * read + 16,
                    "{work} bytes examined for {read} read"
                );
            }
            assert_eq!(frames, 1);
        }
    }

    #[test]
    fn the_codec_constant_is_a_fresh_codec() {
        let mut codec = XmlCodec;
        let mut buf = BytesMut::from("<presence/>");
        assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Stanza(_)))));
    }

    #[test]
    fn escaping_round_trips_and_drops_control_characters() {
        let s = "<a & 'b' \"c\">\u{1}\n";
        let e = escape(s);
        assert_eq!(e, "&lt;a &amp; &apos;b&apos; &quot;c&quot;&gt;\n");
        assert_eq!(unescape(&e).expect("valid"), "<a & 'b' \"c\">\n");
        let m = stanza(&format!("<m a='{e}'>{e}</m>"));
        assert_eq!(
            (m.attr("a"), m.text().as_str()),
            (Some("<a & 'b' \"c\">\n"), "<a & 'b' \"c\">\n")
        );
    }
}
