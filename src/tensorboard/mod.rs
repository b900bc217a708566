//! Export to TensorBoard: the event-file format (`events`), a run's history as scalars and
//! histograms in it (`convert`), and a sweep's knobs for the HParams dashboard (`hparams`).

pub mod convert;
pub mod events;
pub mod hparams;

pub use convert::{run_events, Session};
