//! The gRPC codec of every Pluis stub: prost's, except that a message
//! that does not decode (bad UTF-8 in a string, a truncated field) is the
//! sender's error, `INVALID_ARGUMENT` naming the message and field, not
//! the `INTERNAL` that tonic-prost answers with. The message names only
//! schema types and fields, never the bytes.

use std::marker::PhantomData;

use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_prost::{ProstDecoder, ProstEncoder};

/// prost's codec, with decode failures blamed on the sender.
#[derive(Debug, Clone)]
pub struct PluisCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for PluisCodec<T, U> {
    fn default() -> Self {
        PluisCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for PluisCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = SenderBlamed<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        SenderBlamed(ProstDecoder::default())
    }
}

/// prost's decoder, its failures made `INVALID_ARGUMENT`.
#[derive(Debug, Clone, Default)]
pub struct SenderBlamed<U>(ProstDecoder<U>);

impl<U: prost::Message + Default> Decoder for SenderBlamed<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        self.0.decode(buf).map_err(|status| {
            if status.code() == Code::Internal {
                let what = status
                    .message()
                    .trim_start_matches("failed to decode Protobuf message: ");
                Status::invalid_argument(format!("not a valid message: {what}"))
            } else {
                status
            }
        })
    }

    fn buffer_settings(&self) -> tonic::codec::BufferSettings {
        self.0.buffer_settings()
    }
}
