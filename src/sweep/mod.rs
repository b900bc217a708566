//! Sweeps: grids of runs that are resumable, safe to interrupt, and sliced into cluster shards.
//!
//! - `grid`: knobs and values, expanded in one fixed order, each run with a stable id.
//! - `file`: the same grid written as a TOML or JSON file.
//! - `index`: the per-folder list of finished runs, one JSON line each.
//! - `shard`: which slice of the grid this process runs.
//! - `summary`: indexes merged into one row per configuration, over seeds.

pub mod file;
pub mod grid;
pub mod index;
pub mod shard;
pub mod summary;
