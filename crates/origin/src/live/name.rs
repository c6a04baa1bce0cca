//! What a stream name may be, for every place that takes one (publishes, keys, VOD
//! files, the write API): its own module so that none of them imports another for it.

/// Stream names are path segments: keep them boring.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}
