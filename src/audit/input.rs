//! Reading pod snapshots as kubectl prints them: `get -o json` (a List), `get -w -o json`
//! (concatenated objects), `--output-watch-events` (`{"type","object"}`), one JSON document
//! per line, and YAML (`-o yaml`, multi-document). Each unusable document is reported with
//! its index and reason; reading goes on with the next one.
//!
//! JSON is read in one pass per document, straight into the pod view; the reader keeps at
//! most one partial document plus one read chunk in memory, so `kubectl get -w` can be
//! piped in and audited as it streams.

use std::fmt;
use std::io::{self, Read};

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use podwarden_base::scan;
use podwarden_model::PodView;
use podwarden_model::view::{KindIsPod, PodField, PodParts, PodSeed, SpecSource, with_str};

/// Where an item came from: the document's 1-based index, and the item's within a List.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocRef {
    pub document: usize,
    pub item: Option<usize>,
}

impl fmt::Display for DocRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(i) => write!(f, "document {}, item {}", self.document, i),
            None => write!(f, "document {}", self.document),
        }
    }
}

// Snapshots are moved once from the reader to the auditor; boxing them would cost an
// allocation per snapshot to shrink values that never sit in a collection for long.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum What {
    /// A pod snapshot; `deleted` for the final state in a DELETED watch event.
    Snapshot { view: PodView, deleted: bool },
    /// A document (or list item) that could not be used, and why.
    Unusable(String),
}

#[derive(Debug)]
pub struct Item {
    pub at: DocRef,
    pub what: What,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    Error,
}

fn event_type(s: &str) -> Result<EventType, String> {
    match s {
        "ADDED" => Ok(EventType::Added),
        "MODIFIED" => Ok(EventType::Modified),
        "DELETED" => Ok(EventType::Deleted),
        "BOOKMARK" => Ok(EventType::Bookmark),
        "ERROR" => Ok(EventType::Error),
        other => Err(other.to_string()),
    }
}

/// The items of one watch event, whichever way its object was read.
fn event_items(
    at: DocRef,
    kind: Result<EventType, String>,
    object: impl FnOnce() -> Result<EventObject, String>,
) -> Vec<Item> {
    let what = match kind {
        Err(k) => What::Unusable(format!(
            "unknown watch event type {k:?} (want ADDED, MODIFIED, DELETED, BOOKMARK or ERROR)"
        )),
        Ok(EventType::Bookmark) => return Vec::new(),
        Ok(kind) => match object() {
            Ok(EventObject::Pod(view)) => What::Snapshot {
                view,
                deleted: kind == EventType::Deleted,
            },
            Ok(EventObject::Status(msg)) => What::Unusable(format!("watch ERROR event: {msg}")),
            Ok(EventObject::Skipped) => return Vec::new(),
            Err(e) => What::Unusable(e),
        },
    };
    vec![Item { at, what }]
}

#[allow(clippy::large_enum_variant)]
enum EventObject {
    Pod(PodView),
    Status(String),
    Skipped,
}

/// A `Status` object's message (what a watch ERROR event carries).
#[derive(Deserialize)]
struct StatusMessage {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    code: Option<i64>,
}

impl StatusMessage {
    fn describe(self) -> String {
        let mut s = self.message.unwrap_or_else(|| "no message".into());
        if let Some(r) = self.reason {
            s.push_str(&format!(" (reason {r}"));
            if let Some(c) = self.code {
                s.push_str(&format!(", code {c}"));
            }
            s.push(')');
        }
        s
    }
}

/// One JSON document, read in one pass.
enum Doc<'de> {
    Pod(PodView),
    Event {
        kind: Option<Result<EventType, String>>,
        object: Option<Result<EventObject, &'de RawValue>>,
    },
    List(Vec<&'de RawValue>),
}

/// The top-level keys of the documents `audit` reads: a pod, a watch event (`type`,
/// `object`), a list (`items`).
#[derive(Debug, Clone, Copy)]
enum DocKey {
    Kind,
    Pod(PodField),
    Type,
    Object,
    Items,
    Other,
}

impl<'de> Deserialize<'de> for DocKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = DocKey;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_str<E>(self, s: &str) -> Result<DocKey, E> {
                Ok(match s {
                    "kind" => DocKey::Kind,
                    "type" => DocKey::Type,
                    "object" => DocKey::Object,
                    "items" => DocKey::Items,
                    _ => PodField::from_key(s).map_or(DocKey::Other, DocKey::Pod),
                })
            }
        }
        d.deserialize_identifier(V)
    }
}

#[derive(Clone, Copy)]
struct DocSeed<'s>(&'s dyn SpecSource);

impl<'de> de::DeserializeSeed<'de> for DocSeed<'_> {
    type Value = Doc<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Doc<'de>, D::Error> {
        d.deserialize_any(DocVisitor(self.0))
    }
}

struct DocVisitor<'s>(&'s dyn SpecSource);

impl<'de> Visitor<'de> for DocVisitor<'_> {
    type Value = Doc<'de>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Pod, a List of pods, or a watch event")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc<'de>, A::Error> {
        let mut parts = PodParts::new(self.0);
        let mut kind: Option<Result<(), String>> = None;
        let mut event: Option<Result<EventType, String>> = None;
        let mut object: Option<Result<EventObject, &'de RawValue>> = None;
        let mut items: Option<Vec<&'de RawValue>> = None;
        while let Some(key) = map.next_key::<DocKey>()? {
            match key {
                DocKey::Kind => kind = Some(map.next_value_seed(KindIsPod)?),
                DocKey::Pod(field) => parts.field(field, &mut map)?,
                DocKey::Type => {
                    event = Some(map.next_value_seed(EventTypeSeed)?);
                }
                DocKey::Object => {
                    object = Some(match event {
                        Some(Ok(EventType::Bookmark)) => {
                            map.next_value::<IgnoredAny>()?;
                            Ok(EventObject::Skipped)
                        }
                        Some(Ok(EventType::Error)) => Ok(EventObject::Status(
                            map.next_value::<StatusMessage>()?.describe(),
                        )),
                        Some(Ok(_)) => Ok(EventObject::Pod(map.next_value_seed(PodSeed(self.0))?)),
                        // The type comes later (or never): keep the object's text.
                        _ => Err(map.next_value::<&'de RawValue>()?),
                    });
                }
                DocKey::Items => items = Some(map.next_value()?),
                DocKey::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if let Some(items) = items {
            return Ok(Doc::List(items));
        }
        if event.is_some() || object.is_some() {
            return Ok(Doc::Event {
                kind: event,
                object,
            });
        }
        match kind {
            Some(Err(k)) if k.ends_with("List") => Ok(Doc::List(Vec::new())),
            Some(Err(k)) => Err(de::Error::custom(format_args!("kind {k:?} is not a Pod"))),
            _ => parts.finish().map(Doc::Pod),
        }
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Doc<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<&'de RawValue>()? {
            items.push(item);
        }
        Ok(Doc::List(items))
    }
}

struct EventTypeSeed;

impl<'de> de::DeserializeSeed<'de> for EventTypeSeed {
    type Value = Result<EventType, String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        with_str(d, "a watch event type", event_type)
    }
}

fn doc_items(doc: Doc<'_>, document: usize, specs: &dyn SpecSource) -> Vec<Item> {
    let at = DocRef {
        document,
        item: None,
    };
    match doc {
        Doc::Pod(view) => vec![Item {
            at,
            what: What::Snapshot {
                view,
                deleted: false,
            },
        }],
        Doc::Event { kind, object } => {
            let kind = kind.unwrap_or_else(|| Err("(none)".into()));
            event_items(at, kind, || match object {
                None => Err("watch event has no object".into()),
                Some(Ok(o)) => Ok(o),
                Some(Err(raw)) => parse_pod(raw.get().as_bytes(), specs)
                    .map(EventObject::Pod)
                    .map_err(|e| format!("object: {e}")),
            })
        }
        Doc::List(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, raw)| Item {
                at: DocRef {
                    document,
                    item: Some(i + 1),
                },
                what: match parse_pod(raw.get().as_bytes(), specs) {
                    Ok(view) => What::Snapshot {
                        view,
                        deleted: false,
                    },
                    Err(e) => What::Unusable(e),
                },
            })
            .collect(),
    }
}

/// The same, for a document already parsed into a value (YAML).
fn value_items(v: serde_json::Value, document: usize) -> Vec<Item> {
    let at = DocRef {
        document,
        item: None,
    };
    let snapshot = |r: Result<PodView, serde_json::Error>| match r {
        Ok(view) => What::Snapshot {
            view,
            deleted: false,
        },
        Err(e) => What::Unusable(e.to_string()),
    };
    if let Some(items) = v.get("items") {
        let Some(items) = items.as_array() else {
            return vec![Item {
                at,
                what: What::Unusable("items is not a list".into()),
            }];
        };
        return items
            .iter()
            .enumerate()
            .map(|(i, item)| Item {
                at: DocRef {
                    document,
                    item: Some(i + 1),
                },
                what: snapshot(PodView::from_value(item)),
            })
            .collect();
    }
    if v.get("type").is_some() || v.get("object").is_some() {
        let kind = match v.get("type").and_then(|t| t.as_str()) {
            Some(t) => event_type(t),
            None => Err("(none)".into()),
        };
        return event_items(at, kind, || match v.get("object") {
            None => Err("watch event has no object".into()),
            Some(o) if kind_is(&v, "ERROR") => Ok(EventObject::Status(
                StatusMessage::deserialize(o)
                    .map_or_else(|e| e.to_string(), StatusMessage::describe),
            )),
            Some(o) => PodView::from_value(o)
                .map(EventObject::Pod)
                .map_err(|e| format!("object: {e}")),
        });
    }
    vec![Item {
        at,
        what: snapshot(PodView::from_value(&v)),
    }]
}

fn kind_is(v: &serde_json::Value, t: &str) -> bool {
    v.get("type").and_then(|x| x.as_str()) == Some(t)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Yaml,
}

/// Reads documents from a byte stream, one batch of items per document.
pub struct DocumentReader<R> {
    src: R,
    buf: Vec<u8>,
    /// Bytes of `buf` before this are consumed.
    pos: usize,
    eof: bool,
    documents: usize,
    format: Option<Format>,
    /// The largest document accepted; a bigger one is reported and skipped.
    max_document: usize,
}

/// Bytes read from the source at a time.
const CHUNK: usize = 1 << 20;
/// Default bound on one document (a `kubectl get pods -A -o json` of a large cluster).
pub const DEFAULT_MAX_DOCUMENT: usize = 1 << 30;

impl DocumentReader<io::Empty> {
    /// Everything already in memory: no copying, no further reads.
    pub fn from_vec(bytes: Vec<u8>) -> Self {
        DocumentReader {
            src: io::empty(),
            buf: bytes,
            pos: 0,
            eof: true,
            documents: 0,
            format: None,
            max_document: usize::MAX,
        }
    }
}

impl<R: Read> DocumentReader<R> {
    pub fn new(src: R) -> Self {
        Self::with_limit(src, DEFAULT_MAX_DOCUMENT)
    }

    pub fn with_limit(src: R, max_document: usize) -> Self {
        DocumentReader {
            src,
            buf: Vec::new(),
            pos: 0,
            eof: false,
            documents: 0,
            format: None,
            max_document,
        }
    }

    /// Documents read so far (usable or not).
    pub fn documents(&self) -> usize {
        self.documents
    }

    /// Read more input; false at the end of it.
    fn fill(&mut self) -> io::Result<bool> {
        if self.eof {
            return Ok(false);
        }
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        self.buf.resize(old + CHUNK, 0);
        let n = loop {
            match self.src.read(&mut self.buf[old..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old);
                    return Err(e);
                }
            }
        };
        self.buf.truncate(old + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    fn skip_whitespace(&mut self) {
        while self
            .buf
            .get(self.pos)
            .is_some_and(|b| b.is_ascii_whitespace())
        {
            self.pos += 1;
        }
    }

    /// The items of the next document; `None` at the end of the input. Bookmarks and
    /// empty documents yield empty batches.
    pub fn next_document(&mut self, specs: &dyn SpecSource) -> io::Result<Option<Vec<Item>>> {
        loop {
            self.skip_whitespace();
            if self.pos >= self.buf.len() {
                if self.fill()? {
                    continue;
                }
                return Ok(None);
            }
            let format = *self.format.get_or_insert(match self.buf[self.pos] {
                b'{' | b'[' => Format::Json,
                _ => Format::Yaml,
            });
            let step = match format {
                Format::Json => self.json_step(specs),
                Format::Yaml => self.yaml_step(),
            };
            match step {
                Step::Items(items) => return Ok(Some(items)),
                Step::NeedMore => {
                    if self.buf.len() - self.pos > self.max_document {
                        self.documents += 1;
                        let at = DocRef {
                            document: self.documents,
                            item: None,
                        };
                        self.skip_oversized();
                        let what = What::Unusable(format!(
                            "larger than the {} MiB document limit; skipped",
                            self.max_document >> 20
                        ));
                        return Ok(Some(vec![Item { at, what }]));
                    }
                    if !self.fill()? {
                        // The input ended inside a document: the step sees eof next time.
                        continue;
                    }
                }
            }
        }
    }

    fn json_step(&mut self, specs: &dyn SpecSource) -> Step {
        lighten(&mut self.buf[self.pos..], specs);
        let slice = &self.buf[self.pos..];
        let mut de = serde_json::Deserializer::from_slice(slice);
        let err = match de::DeserializeSeed::deserialize(DocSeed(specs), &mut de) {
            Ok(doc) => {
                // The stream's starting offset is where this document ended.
                let used = de.into_iter::<IgnoredAny>().byte_offset();
                self.documents += 1;
                let items = doc_items(doc, self.documents, specs);
                self.pos += used;
                return Step::Items(items);
            }
            Err(e) => e,
        };
        if err.is_eof() && !self.eof {
            return Step::NeedMore;
        }
        // Find where the bad document ends, to go on after it.
        let mut scan = serde_json::Deserializer::from_slice(slice).into_iter::<IgnoredAny>();
        let end = match scan.next() {
            Some(Ok(_)) => Some(scan.byte_offset()),
            Some(Err(e)) if e.is_eof() && !self.eof => return Step::NeedMore,
            _ => None,
        };
        let end = match end {
            Some(end) => end,
            // Not even valid JSON: go on at the next line that opens a document.
            None => match next_document_start(slice) {
                Some(n) => n,
                None if self.eof => slice.len(),
                None => return Step::NeedMore,
            },
        };
        let reason = if err.is_data() {
            explain(&slice[..end], DocSeed(specs)).unwrap_or_else(|| err.to_string())
        } else {
            err.to_string()
        };
        self.documents += 1;
        self.pos += end;
        Step::Items(vec![Item {
            at: DocRef {
                document: self.documents,
                item: None,
            },
            what: What::Unusable(reason),
        }])
    }

    fn yaml_step(&mut self) -> Step {
        let slice = &self.buf[self.pos..];
        let (text_len, consumed) = match yaml_document_end(slice) {
            Some(x) => x,
            None if self.eof => (slice.len(), slice.len()),
            None => return Step::NeedMore,
        };
        let text = &slice[..text_len];
        self.pos += consumed;
        if yaml_is_empty(text) {
            return Step::Items(Vec::new());
        }
        self.documents += 1;
        let document = self.documents;
        let parsed = std::str::from_utf8(text)
            .map_err(|e| format!("not UTF-8: {e}"))
            .and_then(|t| {
                serde_saphyr::from_str::<serde_json::Value>(t).map_err(|e| e.to_string())
            });
        Step::Items(match parsed {
            Ok(v) => value_items(v, document),
            Err(e) => vec![Item {
                at: DocRef {
                    document,
                    item: None,
                },
                what: What::Unusable(e),
            }],
        })
    }

    /// Drop the buffered part of an oversized document and resume at the next document.
    fn skip_oversized(&mut self) {
        let start = self.pos + 1;
        match next_document_start(&self.buf[start..]) {
            Some(n) => self.pos = start + n,
            None => self.pos = self.buf.len(),
        }
    }
}

/// Blank, in the document at the start of `buf`, the values the parse would skip anyway:
/// the pod's `managedFields`, and its `spec` when `specs` already knows it (the parse then
/// takes the known one). Only pods and watch events of pods are touched; anything not
/// read for certain is left as it is.
fn lighten(buf: &mut [u8], specs: &dyn SpecSource) {
    let mut blanks: [Option<std::ops::Range<usize>>; 2] = [None, None];
    if let Some(pod) = pod_object(buf) {
        find_blanks(buf, pod, specs, &mut blanks);
    }
    for range in blanks.into_iter().flatten() {
        scan::blank(buf, range);
    }
}

/// Where the pod object of a pod document or pod watch event starts.
fn pod_object(buf: &[u8]) -> Option<usize> {
    let top = scan::skip_ws(buf, 0)?;
    let mut cursor = scan::ObjectCursor::new(buf, top)?;
    while let Some((key, value)) = cursor.next_key(buf) {
        match key {
            b"object" => return (buf.get(value) == Some(&b'{')).then_some(value),
            b"metadata" | b"spec" | b"status" => return Some(top),
            b"items" => return None,
            _ => cursor.resume_at(scan::value_end(buf, value)?),
        }
    }
    None
}

fn find_blanks(
    buf: &[u8],
    pod: usize,
    specs: &dyn SpecSource,
    blanks: &mut [Option<std::ops::Range<usize>>; 2],
) -> Option<()> {
    let mut known_spec = false;
    let mut metadata_seen = false;
    let mut cursor = scan::ObjectCursor::new(buf, pod)?;
    while let Some((key, value)) = cursor.next_key(buf) {
        let end = match key {
            b"metadata" => {
                let (end, uid, controlled, managed) = read_metadata(buf, value)?;
                blanks[0] = managed;
                known_spec = controlled && uid.is_some_and(|u| specs.known_spec(u).is_some());
                metadata_seen = true;
                end
            }
            b"spec" if known_spec && buf[value] == b'{' => {
                let end = scan::container_end(buf, value)?;
                blanks[1] = Some(value..end);
                end
            }
            // Nothing after the status is needed; the spec is needed once metadata is read.
            b"status" | b"spec" if metadata_seen => return Some(()),
            _ => scan::value_end(buf, value)?,
        };
        cursor.resume_at(end);
    }
    Some(())
}

/// The metadata's end, uid (if written without escapes), whether an ownerReference is the
/// controller, and where `managedFields` is.
#[allow(clippy::type_complexity)]
fn read_metadata(
    buf: &[u8],
    start: usize,
) -> Option<(usize, Option<&str>, bool, Option<std::ops::Range<usize>>)> {
    let (mut uid, mut controlled, mut managed) = (None, false, None);
    let mut cursor = scan::ObjectCursor::new(buf, start)?;
    while let Some((key, value)) = cursor.next_key(buf) {
        let end = scan::value_end(buf, value)?;
        match key {
            b"uid" if buf[value] == b'"' => {
                let raw = &buf[value + 1..end - 1];
                uid = (!raw.contains(&b'\\'))
                    .then(|| std::str::from_utf8(raw).ok())
                    .flatten();
            }
            // Inside ownerReferences, `"controller":true` can only be that key: a quote
            // within a string value is always escaped.
            b"ownerReferences" => {
                let refs = &buf[value..end];
                controlled = memchr::memmem::find(refs, b"\"controller\":true").is_some()
                    || memchr::memmem::find(refs, b"\"controller\": true").is_some();
            }
            b"managedFields" if buf[value] == b'[' => managed = Some(value..end),
            _ => {}
        }
        cursor.resume_at(end);
    }
    Some((cursor.closed_at()?, uid, controlled, managed))
}

/// A pod from JSON text; errors name the field's path.
fn parse_pod(bytes: &[u8], specs: &dyn SpecSource) -> Result<PodView, String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de::DeserializeSeed::deserialize(PodSeed(specs), &mut de)
        .map_err(|e| explain(bytes, PodSeed(specs)).unwrap_or_else(|| e.to_string()))
}

/// Parse again, tracking the path, to say where a data error is (`status.phase: ...`).
/// Only on the error path: tracking costs time the good documents need not pay.
fn explain<'de, S: de::DeserializeSeed<'de>>(bytes: &'de [u8], seed: S) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let mut track = serde_path_to_error::Track::new();
    let err = match seed.deserialize(serde_path_to_error::Deserializer::new(&mut de, &mut track)) {
        Ok(_) => return None,
        Err(e) => e,
    };
    let path = track.path().to_string();
    Some(if path.is_empty() || path == "." {
        err.to_string()
    } else {
        format!("{path}: {err}")
    })
}

enum Step {
    Items(Vec<Item>),
    NeedMore,
}

/// Offset of the next line that opens a JSON document (`{` or `[` at the start of a line).
fn next_document_start(slice: &[u8]) -> Option<usize> {
    slice
        .windows(2)
        .position(|w| w[0] == b'\n' && (w[1] == b'{' || w[1] == b'['))
        .map(|i| i + 1)
}

/// Where the YAML document at the start of `slice` ends: (text length, bytes consumed),
/// or None if no separator follows yet. A `---` line opens the next document (it stays
/// with it, as it may carry content); a `...` line ends this one and is consumed.
fn yaml_document_end(slice: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    while line_start < slice.len() {
        let line_end = slice[line_start..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|i| line_start + i);
        let line = slice[line_start..line_end.unwrap_or(slice.len())].trim_ascii_end();
        if line_start > 0 {
            if line == b"..." {
                return Some((line_start, line_end.map_or(slice.len(), |e| e + 1)));
            }
            if line == b"---" || line.starts_with(b"--- ") {
                return Some((line_start, line_start));
            }
        }
        line_start = line_end? + 1;
    }
    None
}

fn yaml_is_empty(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').all(|line| {
        let l = line.trim_ascii();
        l.is_empty() || l.starts_with(b"#") || l == b"---" || l == b"..."
    })
}
