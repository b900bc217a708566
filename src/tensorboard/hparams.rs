//! TensorBoard's HParams dashboard for a sweep: the knobs that differ between its runs, and the
//! metrics to show beside them, so a grid reads as one sortable, filterable table.
//!
//! The plugin reads three summaries, each a value whose metadata carries an `HParamsPluginData`
//! message (field numbers of TensorBoard's `plugins/hparams/*.proto`) and whose tensor is an
//! empty float vector: the experiment (which knobs and metrics) in the sweep's own folder, and a
//! session start (this run's knob values) and end (its status) in each run.

use super::events::{Dimension, Payload, PluginData, SummaryMetadata, SummaryValue};
use super::events::{TensorProto, TensorShape};
use prost::Message;
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};

/// The plugin's name in summary metadata.
const PLUGIN: &str = "hparams";

/// The scalars the table shows per run, each its last value: the evaluation after training
/// (none for a diverged run), the last epoch's fit history, and the run's median vanishing index.
pub const METRICS: [&str; 5] = [
    "accuracy/after_training",
    "loss/after_training",
    "accuracy/epoch",
    "loss/epoch",
    "vanishing_index/median_first_layer",
];

/// `tensorboard.hparams.HParamsPluginData`.
#[derive(Clone, PartialEq, Message)]
struct PluginContent {
    /// Always 0.
    #[prost(int32, tag = "1")]
    version: i32,
    #[prost(oneof = "Content", tags = "2, 3, 4")]
    data: Option<Content>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
enum Content {
    #[prost(message, tag = "2")]
    Experiment(Experiment),
    #[prost(message, tag = "3")]
    SessionStart(SessionStart),
    #[prost(message, tag = "4")]
    SessionEnd(SessionEnd),
}

/// `tensorboard.hparams.Experiment`.
#[derive(Clone, PartialEq, Message)]
struct Experiment {
    #[prost(string, tag = "1")]
    description: String,
    #[prost(double, tag = "3")]
    time_created_secs: f64,
    #[prost(message, repeated, tag = "4")]
    hparam_infos: Vec<HParamInfo>,
    #[prost(message, repeated, tag = "5")]
    metric_infos: Vec<MetricInfo>,
}

/// `tensorboard.hparams.HParamInfo`: a knob, its type and the values it takes.
#[derive(Clone, PartialEq, Message)]
struct HParamInfo {
    #[prost(string, tag = "1")]
    name: String,
    /// DataType: 1 string, 2 bool, 3 float64.
    #[prost(int32, tag = "4")]
    kind: i32,
    #[prost(message, optional, tag = "5")]
    domain_discrete: Option<ListValue>,
    /// The value differs between sessions: true for every knob listed here, as only those that
    /// differ are (the dashboard lists these first).
    #[prost(bool, tag = "7")]
    differs: bool,
}

/// `tensorboard.hparams.MetricInfo`.
#[derive(Clone, PartialEq, Message)]
struct MetricInfo {
    #[prost(message, optional, tag = "1")]
    name: Option<MetricName>,
}

/// `tensorboard.hparams.MetricName`: a scalar tag of the session's own run (empty group).
#[derive(Clone, PartialEq, Message)]
struct MetricName {
    #[prost(string, tag = "1")]
    group: String,
    #[prost(string, tag = "2")]
    tag: String,
}

/// `tensorboard.hparams.SessionStartInfo`: one run's knob values.
#[derive(Clone, PartialEq, Message)]
struct SessionStart {
    #[prost(btree_map = "string, message", tag = "1")]
    hparams: BTreeMap<String, KnobValue>,
    #[prost(string, tag = "4")]
    group_name: String,
    #[prost(double, tag = "5")]
    start_time_secs: f64,
}

/// `tensorboard.hparams.SessionEndInfo`.
#[derive(Clone, PartialEq, Message)]
struct SessionEnd {
    /// Status: 1 success, 2 failure.
    #[prost(int32, tag = "1")]
    status: i32,
    #[prost(double, tag = "2")]
    end_time_secs: f64,
}

/// `google.protobuf.ListValue`.
#[derive(Clone, PartialEq, Message)]
struct ListValue {
    #[prost(message, repeated, tag = "1")]
    values: Vec<KnobValue>,
}

/// `google.protobuf.Value`, the three kinds a knob can be.
#[derive(Clone, PartialEq, Message)]
struct KnobValue {
    #[prost(oneof = "Kind", tags = "2, 3, 4")]
    kind: Option<Kind>,
}

/// `google.protobuf.Value.kind`.
#[derive(Clone, PartialEq, prost::Oneof)]
enum Kind {
    #[prost(double, tag = "2")]
    Number(f64),
    /// Text, and a list knob such as `hidden` as its JSON.
    #[prost(string, tag = "3")]
    Text(String),
    #[prost(bool, tag = "4")]
    Flag(bool),
}

impl KnobValue {
    fn of(value: &Json) -> KnobValue {
        let kind = match value {
            Json::Bool(b) => Kind::Flag(*b),
            Json::Number(n) => Kind::Number(n.as_f64().unwrap_or(f64::NAN)),
            Json::String(s) => Kind::Text(s.clone()),
            other => Kind::Text(other.to_string()),
        };
        KnobValue { kind: Some(kind) }
    }
}

/// One run's knobs by path (`optimizer.learning_rate`), each a JSON leaf: a number, a string, a
/// flag, or a list such as `hidden`.
pub type Knobs = BTreeMap<String, Json>;

/// The knobs that differ between the runs' configs (the name left out, the seed kept), per run,
/// keyed by the knob's path (`optimizer.learning_rate`); empty maps when nothing differs.
pub fn varying_knobs(configs: &[Json]) -> Vec<Knobs> {
    let all: Vec<Knobs> = configs.iter().map(knobs_of).collect();
    let keys: BTreeSet<&String> = all.iter().flat_map(BTreeMap::keys).collect();
    let varying: BTreeSet<String> = keys
        .into_iter()
        .filter(|k| {
            let values = all.iter().map(|m| m.get(*k).map(Json::to_string));
            values.collect::<BTreeSet<_>>().len() > 1
        })
        .cloned()
        .collect();
    all.into_iter()
        .map(|mut knobs| {
            knobs.retain(|k, _| varying.contains(k));
            knobs
        })
        .collect()
}

/// Every leaf of a config but its name, by path.
fn knobs_of(config: &Json) -> Knobs {
    fn walk(prefix: &str, value: &Json, out: &mut Knobs) {
        match value {
            Json::Object(map) => {
                for (k, v) in map {
                    let path = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    if path != "name" {
                        walk(&path, v, out);
                    }
                }
            }
            Json::Null => {}
            leaf => {
                out.insert(prefix.to_string(), leaf.clone());
            }
        }
    }
    let mut out = Knobs::new();
    walk("", config, &mut out);
    out
}

/// The sweep's experiment: every knob that any run has, its type and values, and `METRICS`.
pub fn experiment(runs: &[Knobs], description: &str, created: f64) -> SummaryValue {
    // Each knob's distinct values, numbers in numeric order.
    let mut domains: BTreeMap<&String, BTreeMap<String, &Json>> = BTreeMap::new();
    for knobs in runs {
        for (name, value) in knobs {
            domains
                .entry(name)
                .or_default()
                .insert(value.to_string(), value);
        }
    }
    let hparam_infos = domains
        .into_iter()
        .map(|(name, values)| {
            let mut values: Vec<&Json> = values.into_values().collect();
            values.sort_by(|a, b| match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => x.total_cmp(&y),
                _ => a.to_string().cmp(&b.to_string()),
            });
            let kind = if values.iter().all(|v| v.is_boolean()) {
                2
            } else if values.iter().all(|v| v.is_number()) {
                3
            } else {
                1
            };
            HParamInfo {
                name: name.clone(),
                kind,
                domain_discrete: Some(ListValue {
                    values: values.into_iter().map(KnobValue::of).collect(),
                }),
                differs: true,
            }
        })
        .collect();
    let metric_infos = METRICS
        .iter()
        .map(|tag| MetricInfo {
            name: Some(MetricName {
                group: String::new(),
                tag: tag.to_string(),
            }),
        })
        .collect();
    let content = Content::Experiment(Experiment {
        description: description.to_string(),
        time_created_secs: created,
        hparam_infos,
        metric_infos,
    });
    value("_hparams_/experiment", content)
}

/// A run's knob values, at its first step; `group` names the session (one per run).
pub fn session_start(knobs: &Knobs, group: &str, start: f64) -> SummaryValue {
    let content = Content::SessionStart(SessionStart {
        hparams: knobs
            .iter()
            .map(|(k, v)| (k.clone(), KnobValue::of(v)))
            .collect(),
        group_name: group.to_string(),
        start_time_secs: start,
    });
    value("_hparams_/session_start_info", content)
}

/// A run's end: success for a completed run, failure for a diverged one.
pub fn session_end(completed: bool, end: f64) -> SummaryValue {
    let content = Content::SessionEnd(SessionEnd {
        status: if completed { 1 } else { 2 },
        end_time_secs: end,
    });
    value("_hparams_/session_end_info", content)
}

/// A value carrying `content` in its metadata and the empty float tensor, as the plugin writes.
fn value(tag: &str, content: Content) -> SummaryValue {
    let content = PluginContent {
        version: 0,
        data: Some(content),
    };
    SummaryValue {
        tag: tag.to_string(),
        metadata: Some(SummaryMetadata {
            plugin_data: Some(PluginData {
                plugin_name: PLUGIN.to_string(),
                content: content.encode_to_vec(),
            }),
        }),
        payload: Some(Payload::Tensor(TensorProto {
            dtype: 1,
            tensor_shape: Some(TensorShape {
                dim: vec![Dimension { size: 0 }],
            }),
        })),
    }
}
