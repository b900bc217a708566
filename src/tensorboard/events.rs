//! TensorBoard's event-file format, written without TensorFlow.
//!
//! An event file is a sequence of records, each `length (u64 LE)`, `masked CRC-32C of the length
//! (u32 LE)`, `data`, `masked CRC-32C of the data (u32 LE)`, where the data is a serialized
//! `tensorflow.Event` protocol buffer. The first event names the file version; every later one
//! carries a `Summary` of tagged values at one step. Only the messages and fields gradtrace writes
//! are declared here, with the field numbers of TensorBoard's `event.proto` and `summary.proto`,
//! so any TensorBoard (or `tbparse`, or TensorFlow's `summary_iterator`) reads the files.

use prost::Message;

/// The version string TensorBoard expects in a file's first event.
pub const FILE_VERSION: &str = "brain.Event:2";

/// CRC-32C (Castagnoli), the checksum TensorFlow's record format uses.
const CASTAGNOLI: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// `tensorflow.Event`: a wall time, a step, and either the file version or a summary.
#[derive(Clone, PartialEq, Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The training step the values belong to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// What the event carries.
    #[prost(oneof = "What", tags = "3, 5")]
    pub what: Option<What>,
}

/// `Event.what`, the two cases written here.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum What {
    /// The format version, in the first event of a file.
    #[prost(string, tag = "3")]
    FileVersion(String),
    /// Tagged values at the event's step.
    #[prost(message, tag = "5")]
    Summary(Summary),
}

/// `tensorflow.Summary`: the values of one step.
#[derive(Clone, PartialEq, Message)]
pub struct Summary {
    /// One entry per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: one tag's value, a scalar or a histogram, or a plugin's payload.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryValue {
    /// The tag, `section/name`: TensorBoard groups charts by the part before the first slash.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// Which plugin the value is for (set for the HParams summaries only).
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
    /// The value.
    #[prost(oneof = "Payload", tags = "2, 5, 8")]
    pub payload: Option<Payload>,
}

/// `Summary.Value.value`, the cases written here.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Payload {
    /// A scalar (TensorBoard stores scalars as float32).
    #[prost(float, tag = "2")]
    Scalar(f32),
    /// A histogram.
    #[prost(message, tag = "5")]
    Histogram(HistogramProto),
    /// A tensor (the HParams summaries' empty one).
    #[prost(message, tag = "8")]
    Tensor(TensorProto),
}

/// `tensorflow.HistogramProto`. Bucket i holds the values in (limit[i - 1], limit[i]]; TensorBoard
/// takes the first bucket's left edge from `min` and the last one's right edge from `max`.
#[derive(Clone, PartialEq, Message)]
pub struct HistogramProto {
    /// Left edge of the first bucket.
    #[prost(double, tag = "1")]
    pub min: f64,
    /// Right edge of the last bucket.
    #[prost(double, tag = "2")]
    pub max: f64,
    /// Number of values counted.
    #[prost(double, tag = "3")]
    pub num: f64,
    /// Sum of the values.
    #[prost(double, tag = "4")]
    pub sum: f64,
    /// Sum of their squares.
    #[prost(double, tag = "5")]
    pub sum_squares: f64,
    /// Right edge of each bucket.
    #[prost(double, repeated, tag = "6")]
    pub bucket_limit: Vec<f64>,
    /// Count of each bucket.
    #[prost(double, repeated, tag = "7")]
    pub bucket: Vec<f64>,
}

/// `tensorboard.SummaryMetadata`, the plugin part only.
#[derive(Clone, PartialEq, Message)]
pub struct SummaryMetadata {
    /// Which plugin the value is for, and its payload.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorboard.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, Message)]
pub struct PluginData {
    /// `hparams`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// A serialized `HParamsPluginData`.
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorboard.TensorProto`, as much as the empty tensor needs.
#[derive(Clone, PartialEq, Message)]
pub struct TensorProto {
    /// 1: DT_FLOAT.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// The shape.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
}

/// `tensorboard.TensorShapeProto`.
#[derive(Clone, PartialEq, Message)]
pub struct TensorShape {
    /// One entry per dimension.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dimension>,
}

/// `tensorboard.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, Message)]
pub struct Dimension {
    /// Its length.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

impl SummaryValue {
    /// A scalar value.
    pub fn scalar(tag: impl Into<String>, value: f64) -> SummaryValue {
        SummaryValue {
            tag: tag.into(),
            metadata: None,
            payload: Some(Payload::Scalar(value as f32)),
        }
    }

    /// A histogram value.
    pub fn histogram(tag: impl Into<String>, histogram: HistogramProto) -> SummaryValue {
        SummaryValue {
            tag: tag.into(),
            metadata: None,
            payload: Some(Payload::Histogram(histogram)),
        }
    }
}

/// An event file being built in memory, written out whole (through `output::PendingFile`) so a
/// reader never sees half of one.
pub struct EventFile {
    bytes: Vec<u8>,
}

impl EventFile {
    /// A file whose first event states the format version at `wall_time`.
    pub fn new(wall_time: f64) -> EventFile {
        let mut file = EventFile { bytes: Vec::new() };
        file.push(&Event {
            wall_time,
            step: 0,
            what: Some(What::FileVersion(FILE_VERSION.to_string())),
        });
        file
    }

    /// Appends one event holding `values` at `step`; nothing when `values` is empty.
    pub fn write(&mut self, step: i64, wall_time: f64, values: Vec<SummaryValue>) {
        if values.is_empty() {
            return;
        }
        self.push(&Event {
            wall_time,
            step,
            what: Some(What::Summary(Summary { value: values })),
        });
    }

    /// The file's bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    fn push(&mut self, event: &Event) {
        let data = event.encode_to_vec();
        let length = (data.len() as u64).to_le_bytes();
        self.bytes.extend_from_slice(&length);
        self.bytes
            .extend_from_slice(&masked_crc(&length).to_le_bytes());
        self.bytes.extend_from_slice(&data);
        self.bytes
            .extend_from_slice(&masked_crc(&data).to_le_bytes());
    }
}

/// TensorFlow's masked CRC: the CRC-32C rotated right by 15 bits plus a constant, so that a
/// CRC of data that itself holds CRCs stays well distributed.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    CASTAGNOLI
        .checksum(bytes)
        .rotate_right(15)
        .wrapping_add(0xa282_ead8)
}

/// Splits an event file back into its events, checking both checksums of every record: the
/// reader the tests use, and a check that a file is whole.
pub fn read_events(mut bytes: &[u8]) -> Result<Vec<Event>, String> {
    let mut events = Vec::new();
    while !bytes.is_empty() {
        let at = events.len();
        if bytes.len() < 12 {
            return Err(format!("record {at}: the file ends inside its header"));
        }
        let (length, rest) = bytes.split_at(8);
        let (length_crc, rest) = rest.split_at(4);
        if masked_crc(length).to_le_bytes() != length_crc {
            return Err(format!("record {at}: the length's checksum does not match"));
        }
        let length = u64::from_le_bytes(length.try_into().expect("8 bytes")) as usize;
        if rest.len() < length + 4 {
            return Err(format!("record {at}: the file ends inside its data"));
        }
        let (data, rest) = rest.split_at(length);
        let (data_crc, rest) = rest.split_at(4);
        if masked_crc(data).to_le_bytes() != data_crc {
            return Err(format!("record {at}: the data's checksum does not match"));
        }
        events.push(Event::decode(data).map_err(|e| format!("record {at}: {e}"))?);
        bytes = rest;
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_standard_check_value() {
        // The CRC-32C check value of "123456789" is 0xE3069283 (RFC 3720, appendix B.4).
        assert_eq!(CASTAGNOLI.checksum(b"123456789"), 0xe306_9283);
        assert_eq!(
            masked_crc(b"123456789"),
            0xe306_9283u32.rotate_right(15).wrapping_add(0xa282_ead8)
        );
    }

    #[test]
    fn a_scalar_event_encodes_as_the_protocol_buffer_wire_format() {
        // Hand-encoded: field 1 (double, wire type 1) = 1.5, field 2 (varint) = 3, field 5
        // (length-delimited) = Summary { field 1 = Value { field 1 = "a", field 2 (fixed32)
        // = 2.0f32 } }.
        let event = Event {
            wall_time: 1.5,
            step: 3,
            what: Some(What::Summary(Summary {
                value: vec![SummaryValue::scalar("a", 2.0)],
            })),
        };
        let mut expected = vec![0x09];
        expected.extend_from_slice(&1.5f64.to_le_bytes());
        expected.extend_from_slice(&[0x10, 0x03, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, b'a', 0x15]);
        expected.extend_from_slice(&2.0f32.to_le_bytes());
        assert_eq!(event.encode_to_vec(), expected);
    }

    #[test]
    fn a_file_reads_back_and_a_flipped_byte_is_caught() {
        let mut file = EventFile::new(100.0);
        file.write(7, 101.0, vec![SummaryValue::scalar("loss/epoch", 0.25)]);
        file.write(8, 102.0, Vec::new());
        let bytes = file.into_bytes();

        let events = read_events(&bytes).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].what, Some(What::FileVersion(FILE_VERSION.into())));
        assert_eq!(events[1].step, 7);
        let Some(What::Summary(summary)) = &events[1].what else {
            panic!("the second event carries a summary");
        };
        assert_eq!(
            summary.value,
            vec![SummaryValue::scalar("loss/epoch", 0.25)]
        );

        let mut broken = bytes.clone();
        let last = broken.len() - 6;
        broken[last] ^= 1;
        assert!(read_events(&broken).unwrap_err().contains("checksum"));
        assert!(read_events(&bytes[..bytes.len() - 1]).is_err());
    }
}
