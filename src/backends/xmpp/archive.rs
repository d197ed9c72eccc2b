//! The bot's own message archive (Message Archive Management, XEP-0313:
//! https://xmpp.org/extensions/xep-0313.html), read at each login for the result parts the
//! bot posted to direct chats lately: a room's history shows what the bot said there
//! (`history.rs`), but a direct chat has no history other than the archive the server keeps
//! for the account (prosody's `mod_mam`, ejabberd's `mod_mam`).
//!
//! The query asks for what was archived since a moment (a `start` field in the data form,
//! §4.1.2), a page of [`PAGE`] at a time (Result Set Management, XEP-0059); each archived
//! message comes as a `<message>` wrapping a `<result queryid='…'>` whose `<forwarded>`
//! (XEP-0297) holds the archived stanza, and the `<iq type='result'>` closing each page holds
//! `<fin complete='true|false'>` with the page's `<last>` id (§4.3). A server without MAM
//! answers the query with an error, and nothing more is read. Pure functions, unit-tested
//! without a server.

use super::wire::{escape, Element};

/// MAM's namespace (version 2).
pub const NS_MAM: &str = "urn:xmpp:mam:2";
const NS_FORWARD: &str = "urn:xmpp:forward:0";
const NS_RSM: &str = "http://jabber.org/protocol/rsm";

/// Archived messages asked for per page.
pub const PAGE: usize = 100;

/// Pages read at most per login: a busy account's last minutes, not its whole archive.
pub const MAX_PAGES: usize = 10;

/// The query `id` (also its `queryid`) for what was archived since `start` (an XEP-0082
/// DateTime), after the page ending at `after` when there is one.
pub fn query_xml(id: &str, start: &str, after: Option<&str>) -> String {
    let after = after
        .map(|last| format!("<after>{}</after>", escape(last)))
        .unwrap_or_default();
    format!(
        "<iq type='set' id='{id}'><query xmlns='{NS_MAM}' queryid='{id}'>\
         <x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'><value>{NS_MAM}</value></field>\
         <field var='start'><value>{start}</value></field></x>\
         <set xmlns='{NS_RSM}'><max>{PAGE}</max>{after}</set></query></iq>",
        id = escape(id),
        start = escape(start),
    )
}

/// The archived stanza a `message` carries as a result of query `query_id` from the
/// archive of `bare` (the bot's account: the wrapper comes from it, or from nobody, which
/// is the server on the account's behalf, RFC 6120 §8.1.2.1). `None` for any other message,
/// which a client must not take as the archive's.
pub fn archived<'m>(message: &'m Element, query_id: &str, bare: &str) -> Option<&'m Element> {
    if let Some(from) = message.attr("from") {
        if !from.eq_ignore_ascii_case(bare) {
            return None;
        }
    }
    let result = message.child_ns("result", NS_MAM)?;
    if result.attr("queryid") != Some(query_id) {
        return None;
    }
    result.child_ns("forwarded", NS_FORWARD)?.child("message")
}

/// The keys of a result part the bot posted, from an archived `message`: sent by the bot's
/// account `bare` (any resource), of type `chat`, its id and origin-id (XEP-0359). Empty
/// for anything else.
pub fn own_part_keys(message: &Element, bare: &str) -> Vec<String> {
    let from_bot = message
        .attr("from")
        .map(|from| from.split_once('/').map_or(from, |(b, _)| b))
        .is_some_and(|from| from.eq_ignore_ascii_case(bare));
    if !from_bot || message.attr("type") != Some("chat") {
        return Vec::new();
    }
    super::history::part_keys(message)
}

/// How a page of the query ended (`<fin>` in the `<iq type='result'>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageEnd {
    /// The last page: nothing more since the start.
    Complete,
    /// More after the page's last message, by its archive id.
    More(String),
}

/// The end of a page from the `<iq type='result'>` answering the query; `None` when it
/// holds no `<fin>` (taken as the end: nothing more can be asked for).
pub fn page_end(iq: &Element) -> Option<PageEnd> {
    let fin = iq.child_ns("fin", NS_MAM)?;
    if fin.attr("complete") == Some("true") {
        return Some(PageEnd::Complete);
    }
    let last = fin.child_ns("set", NS_RSM)?.child("last")?.text();
    Some(if last.trim().is_empty() {
        PageEnd::Complete
    } else {
        PageEnd::More(last)
    })
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::Decoder;

    use super::*;
    use crate::backends::xmpp::wire::{Frame, XmlCodec};

    const BOT: &str = "stormbot@localhost";

    fn parse(xml: &str) -> Element {
        let decoded = XmlCodec::default().decode(&mut BytesMut::from(xml));
        let Some(Frame::Stanza(e)) = decoded.expect("xml") else {
            panic!("not a stanza")
        };
        e
    }

    /// An archived message from `from` as the archive hands it on for query `q`.
    fn result(wrapper_from: Option<&str>, q: &str, from: &str, kind: &str) -> Element {
        let wrapper_from = wrapper_from
            .map(|f| format!(" from='{f}'"))
            .unwrap_or_default();
        parse(&format!(
            "<message to='{BOT}/r'{wrapper_from}><result xmlns='{NS_MAM}' queryid='{q}' id='a1'>\
             <forwarded xmlns='{NS_FORWARD}'><delay xmlns='urn:xmpp:delay' stamp='2024-01-01T00:00:00Z'/>\
             <message xmlns='jabber:client' from='{from}' to='alice@localhost' type='{kind}' id='k1'>\
             <body>x</body><origin-id xmlns='urn:xmpp:sid:0' id='k2'/></message></forwarded>\
             </result></message>"
        ))
    }

    #[test]
    fn the_query_asks_from_the_start_a_page_at_a_time() {
        let q = parse(&query_xml("q1", "2024-01-01T00:00:00Z", None));
        let query = q.child_ns("query", NS_MAM).expect("a MAM query");
        assert_eq!(q.attr("type"), Some("set"));
        assert_eq!(query.attr("queryid"), Some("q1"));
        let fields: Vec<(Option<&str>, String)> = query
            .child("x")
            .unwrap()
            .elements()
            .map(|f| (f.attr("var"), f.child("value").unwrap().text()))
            .collect();
        assert_eq!(
            fields,
            [
                (Some("FORM_TYPE"), NS_MAM.to_owned()),
                (Some("start"), "2024-01-01T00:00:00Z".to_owned())
            ]
        );
        let set = query.child_ns("set", NS_RSM).unwrap();
        assert_eq!(set.child("max").unwrap().text(), PAGE.to_string());
        assert!(set.child("after").is_none());
        let next = parse(&query_xml("q1", "2024-01-01T00:00:00Z", Some("a<9")));
        let set = next.child("query").unwrap().child("set").unwrap();
        assert_eq!(set.child("after").unwrap().text(), "a<9");
    }

    #[test]
    fn only_the_accounts_own_archive_answering_this_query_counts() {
        let own = format!("{BOT}/other-resource");
        for wrapper in [None, Some(BOT)] {
            let m = result(wrapper, "q1", &own, "chat");
            let archived = archived(&m, "q1", BOT).expect("the archive's");
            assert_eq!(own_part_keys(archived, BOT), ["k1", "k2"]);
        }
        // From someone else (forged), for another query, or no result at all.
        assert!(archived(
            &result(Some("alice@localhost"), "q1", &own, "chat"),
            "q1",
            BOT
        )
        .is_none());
        assert!(archived(&result(None, "q0", &own, "chat"), "q1", BOT).is_none());
        assert!(archived(
            &parse("<message from='alice@localhost'><body>x</body></message>"),
            "q1",
            BOT
        )
        .is_none());
        // Archived, but alice's message to the bot, or not a direct chat: no part of the bot's.
        let m = result(None, "q1", "alice@localhost/phone", "chat");
        assert!(own_part_keys(archived(&m, "q1", BOT).unwrap(), BOT).is_empty());
        let m = result(None, "q1", &own, "groupchat");
        assert!(own_part_keys(archived(&m, "q1", BOT).unwrap(), BOT).is_empty());
    }

    #[test]
    fn a_page_ends_complete_or_with_its_last_id() {
        let fin = |inner: &str| parse(&format!("<iq type='result' id='q1'>{inner}</iq>"));
        assert_eq!(
            page_end(&fin(&format!("<fin xmlns='{NS_MAM}' complete='true'/>"))),
            Some(PageEnd::Complete)
        );
        assert_eq!(
            page_end(&fin(&format!(
                "<fin xmlns='{NS_MAM}'><set xmlns='{NS_RSM}'><first>a1</first><last>a100</last></set></fin>"
            ))),
            Some(PageEnd::More("a100".into()))
        );
        assert_eq!(
            page_end(&fin(&format!(
                "<fin xmlns='{NS_MAM}'><set xmlns='{NS_RSM}'/></fin>"
            ))),
            None
        );
        assert_eq!(page_end(&fin("")), None);
    }
}
