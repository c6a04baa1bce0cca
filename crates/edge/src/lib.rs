//! The mediamesh edge: a cache near the viewers in front of any HTTP origin that
//! serves HLS or DASH.
