//! Fleet: node registry, router and Content Steering (work in progress).
