//! serde_json's reading of the types `Raw` is made of that derive cannot write: lenient
//! leaves, values that are strings in one dialect and objects in another, and choices folded
//! without a `Vec`.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{Choice, Choices, Node, Scalar};

impl<'de: 'a, 'a> Deserialize<'de> for Choices<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Choices<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of choices")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Choices<'a>, A::Error> {
                let mut out = Choices::default();
                while let Some(choice) = seq.next_element::<Choice<'a>>()? {
                    out.add(choice);
                }
                Ok(out)
            }
        }
        d.deserialize_seq(V(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Scalar<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor(PhantomData))
    }
}

struct ScalarVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ScalarVisitor<'a> {
    type Value = Scalar<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Num(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'a>, E> {
        Ok(u64::try_from(v).map_or(Scalar::Other, Scalar::Num))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'a>, E> {
        // Some servers write counts as floats; `as` saturates.
        Ok(if v >= 0.0 {
            Scalar::Num(v as u64)
        } else {
            Scalar::Other
        })
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_unit<E>(self) -> Result<Scalar<'a>, E> {
        Ok(Scalar::Other)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Scalar<'a>, A::Error> {
        IgnoredAny.visit_seq(seq).map(|_| Scalar::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar<'a>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| Scalar::Other)
    }
}

#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum NodeKey {
    Type,
    Text,
    Content,
    Usage,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Node<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Node<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'a>, A::Error> {
                let mut node = Node::default();
                while let Some(key) = map.next_key::<NodeKey>()? {
                    match key {
                        NodeKey::Type => node.kind = map.next_value()?,
                        NodeKey::Text => node.text = map.next_value()?,
                        NodeKey::Content => node.content = map.next_value()?,
                        NodeKey::Usage => node.usage = map.next_value()?,
                        NodeKey::Other => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(node)
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'a>, E> {
                Ok(Node {
                    string: Some(Cow::Borrowed(v)),
                    ..Node::default()
                })
            }
            fn visit_str<E>(self, v: &str) -> Result<Node<'a>, E> {
                Ok(Node {
                    string: Some(Cow::Owned(v.to_owned())),
                    ..Node::default()
                })
            }
            fn visit_string<E>(self, v: String) -> Result<Node<'a>, E> {
                Ok(Node {
                    string: Some(Cow::Owned(v)),
                    ..Node::default()
                })
            }
            fn visit_bool<E>(self, _: bool) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Node<'a>, E> {
                Ok(Node::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Node<'a>, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Node::default())
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}
