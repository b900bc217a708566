//! Pretty JSON with every list of numbers on one line.
//!
//! serde_json's pretty printer puts each element of an array on its own line: a run's kernels,
//! histograms and per-layer lists become tens of thousands of short indented lines, more than
//! half of the file. This formatter indents objects and arrays of objects or arrays as the
//! pretty printer does, and writes arrays of scalars inline, `[0.1, -0.2, 0.3]`: a kernel is one
//! line per input, a histogram one line. Arrays are assumed homogeneous (all of ours are); a
//! mixed one is still valid JSON, only laid out oddly.

use serde::Serialize;
use serde_json::ser::Formatter;
use std::io::{self, Write};

/// Writes `value` in this layout.
pub fn to_writer<W: Write>(writer: W, value: &impl Serialize) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(writer, RowFormatter::default());
    value.serialize(&mut serializer)
}

/// Where the formatter is: one frame per open object or array.
#[derive(Default)]
struct RowFormatter {
    frames: Vec<Frame>,
}

struct Frame {
    array: bool,
    /// Any element so far was an object or an array (the array is laid out one per line).
    nested: bool,
    /// Any element or key was written.
    filled: bool,
}

impl RowFormatter {
    fn indent<W: ?Sized + Write>(&self, writer: &mut W, depth: usize) -> io::Result<()> {
        writer.write_all(b"\n")?;
        (0..depth).try_for_each(|_| writer.write_all(b"  "))
    }

    /// Opens an object or array: inside an array, on a line of its own.
    fn open<W: ?Sized + Write>(&mut self, writer: &mut W, array: bool) -> io::Result<()> {
        if let Some(parent) = self.frames.last_mut() {
            if parent.array {
                parent.nested = true;
                self.indent(writer, self.frames.len())?;
            }
        }
        self.frames.push(Frame {
            array,
            nested: false,
            filled: false,
        });
        writer.write_all(if array { b"[" } else { b"{" })
    }

    /// Closes one: on its own line when it spread over several.
    fn close<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        let frame = self.frames.pop().expect("balanced");
        let spread = if frame.array {
            frame.nested
        } else {
            frame.filled
        };
        if spread {
            self.indent(writer, self.frames.len())?;
        }
        writer.write_all(if frame.array { b"]" } else { b"}" })
    }
}

impl Formatter for RowFormatter {
    fn begin_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, true)
    }

    fn end_array<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer)
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        let frame = self.frames.last_mut().expect("inside an array");
        frame.filled = true;
        if !first {
            writer.write_all(if frame.nested { b"," } else { b", " })?;
        }
        Ok(())
    }

    fn end_array_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }

    fn begin_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.open(writer, false)
    }

    fn end_object<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        self.close(writer)
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.frames.last_mut().expect("inside an object").filled = true;
        if !first {
            writer.write_all(b",")?;
        }
        self.indent(writer, self.frames.len())
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + Write>(&mut self, _writer: &mut W) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    fn text(value: &serde_json::Value) -> String {
        let mut out = Vec::new();
        super::to_writer(&mut out, value).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn lists_of_numbers_stay_on_one_line_and_everything_else_is_indented() {
        let value = json!({
            "a": [1, 2.5, null],
            "kernel": [[0.5, -1], [2, 3]],
            "layers": [{"sd": 1, "counts": []}, {}],
            "empty": {}
        });
        // (serde_json's own maps sort their keys.)
        let want = r#"{
  "a": [1, 2.5, null],
  "empty": {},
  "kernel": [
    [0.5, -1],
    [2, 3]
  ],
  "layers": [
    {
      "counts": [],
      "sd": 1
    },
    {}
  ]
}"#;
        assert_eq!(text(&value), want);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(want).unwrap(),
            value
        );
    }
}
