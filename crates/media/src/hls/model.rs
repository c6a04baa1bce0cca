//! The typed model of Media and Multivariant Playlists (what the writer writes and
//! the parser returns). Not here: text.

// ---------------------------------------------------------------------------
// Model
// ---------------------------------------------------------------------------

/// A Media Playlist (one rendition), including the Low-Latency HLS tags.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MediaPlaylist {
    /// `EXT-X-VERSION`; `0` omits the tag. Use 9 when `skipped_segments > 0`;
    /// at least 6 when `map_uri` is set (the caller sets it).
    pub version: u8,
    /// `EXT-X-TARGETDURATION`, whole seconds.
    pub target_duration: u64,
    /// `EXT-X-PART-INF:PART-TARGET=`, seconds.
    pub part_inf: Option<f64>,
    /// `EXT-X-SERVER-CONTROL`.
    pub server_control: Option<ServerControl>,
    /// `EXT-X-MEDIA-SEQUENCE` (always written).
    pub media_sequence: u64,
    /// `EXT-X-DISCONTINUITY-SEQUENCE` (written when non-zero).
    pub discontinuity_sequence: u64,
    /// `EXT-X-INDEPENDENT-SEGMENTS`.
    pub independent_segments: bool,
    /// `EXT-X-PLAYLIST-TYPE`.
    pub playlist_type: Option<PlaylistType>,
    /// `EXT-X-MAP:URI="..."`, applying to every segment.
    pub map_uri: Option<String>,
    /// `> 0` writes `EXT-X-SKIP:SKIPPED-SEGMENTS=N` before the first segment
    /// (a Playlist Delta Update). `segments` then holds only the segments that
    /// were not skipped; the first of them has Media Sequence Number
    /// `media_sequence + skipped_segments`.
    pub skipped_segments: u64,
    /// Complete segments, oldest first.
    pub segments: Vec<MediaSegment>,
    /// `EXT-X-DISCONTINUITY` for the segment still being produced; written
    /// before `trailing_parts` (the draft requires it before the first part).
    pub trailing_discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME` of the segment still being produced.
    pub trailing_program_date_time: Option<String>,
    /// Parts of the segment still being produced, written after the last
    /// complete segment (no `EXTINF` yet).
    pub trailing_parts: Vec<Part>,
    /// `EXT-X-PRELOAD-HINT` lines, written after `trailing_parts`.
    pub preload_hints: Vec<PreloadHint>,
    /// `EXT-X-RENDITION-REPORT` lines, written after the preload hints.
    pub rendition_reports: Vec<RenditionReport>,
    /// `EXT-X-ENDLIST`.
    pub ended: bool,
}

/// One complete Media Segment and the Partial Segments it was announced as.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MediaSegment {
    pub uri: String,
    /// `EXTINF` duration, seconds.
    pub duration: f64,
    /// `EXT-X-DISCONTINUITY` before this segment.
    pub discontinuity: bool,
    /// `EXT-X-PROGRAM-DATE-TIME`, preformatted ISO 8601 (written verbatim).
    pub program_date_time: Option<String>,
    /// `EXT-X-PART` lines, written before this segment's `EXTINF`.
    pub parts: Vec<Part>,
    /// `EXT-X-GAP`.
    pub gap: bool,
}

/// One `EXT-X-PART`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Part {
    pub uri: String,
    /// Seconds.
    pub duration: f64,
    /// `INDEPENDENT=YES`.
    pub independent: bool,
    /// `GAP=YES`.
    pub gap: bool,
}

/// `EXT-X-SERVER-CONTROL` attributes.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ServerControl {
    pub can_block_reload: bool,
    /// Skip Boundary, seconds.
    pub can_skip_until: Option<f64>,
    pub can_skip_dateranges: bool,
    pub hold_back: Option<f64>,
    pub part_hold_back: Option<f64>,
}

/// `EXT-X-PLAYLIST-TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlaylistType {
    Vod,
    Event,
}

/// `EXT-X-PRELOAD-HINT`.
#[derive(Clone, Debug, PartialEq)]
pub struct PreloadHint {
    pub hint_type: PreloadHintType,
    pub uri: String,
    pub byterange_start: Option<u64>,
    pub byterange_length: Option<u64>,
}

/// `TYPE=` of an `EXT-X-PRELOAD-HINT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PreloadHintType {
    Part,
    Map,
}

/// `EXT-X-RENDITION-REPORT`.
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionReport {
    /// Relative URI of the other rendition's Media Playlist.
    pub uri: String,
    pub last_msn: u64,
    pub last_part: Option<u64>,
}

/// A Multivariant Playlist (formerly "master playlist").
#[derive(Clone, Debug, PartialEq, Default)]
pub struct MultivariantPlaylist {
    /// `EXT-X-VERSION`; `0` omits the tag.
    pub version: u8,
    pub independent_segments: bool,
    /// `EXT-X-STREAM-INF` + URI line, in order.
    pub variants: Vec<Variant>,
    pub content_steering: Option<ContentSteering>,
    /// `EXT-X-SESSION-DATA:DATA-ID="..",VALUE=".."` as `(data_id, value)`.
    /// The parser skips the `URI=` form, which this model cannot hold.
    pub session_data: Vec<(String, String)>,
}

/// One `EXT-X-STREAM-INF` entry.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Variant {
    pub uri: String,
    pub bandwidth: u64,
    pub average_bandwidth: Option<u64>,
    pub codecs: Option<String>,
    /// `(width, height)`.
    pub resolution: Option<(u32, u32)>,
    /// Written with three decimals, as the draft asks.
    pub frame_rate: Option<f64>,
    pub pathway_id: Option<String>,
}

/// `EXT-X-CONTENT-STEERING`.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct ContentSteering {
    pub server_uri: String,
    pub pathway_id: Option<String>,
}
