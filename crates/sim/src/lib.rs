//! Discrete-event simulator of live and on-demand delivery (work in progress).
