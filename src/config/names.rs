//! One name table per enum-valued setting: `named_enum!` declares the enum
//! with the name of each variant as written in suite files and records, and
//! derives everything else from that one table — `ALL`, `parse`, `name`,
//! `Display`, `FromStr` and serde (a plain string), so a name is written once.

/// A name that is not in an enum's table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{name}`; known: {known}")]
pub struct UnknownName {
    pub what: &'static str,
    pub name: String,
    pub known: String,
}

/// Declares a `Copy` enum whose variants are named by string literals.
///
/// ```
/// joulebench::named_enum! {
///     /// A colour.
///     pub enum Colour: "colour" { Red = "red", DarkBlue = "dark-blue" }
/// }
/// assert_eq!(Colour::parse("dark-blue"), Some(Colour::DarkBlue));
/// assert_eq!(Colour::Red.to_string(), "red");
/// ```
#[macro_export]
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $Name:ident : $what:literal {
            $( $(#[$vmeta:meta])* $Variant:ident = $name:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $Name {
            $( $(#[$vmeta])* $Variant ),+
        }

        impl $Name {
            /// Every variant with its name, in declaration order.
            pub const ALL: &'static [(&'static str, $Name)] = &[$( ($name, $Name::$Variant) ),+];
            /// What one value is called in messages.
            pub const WHAT: &'static str = $what;

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, v)| *v)
            }

            /// The name as written in suite files and records.
            pub fn name(self) -> &'static str {
                match self {
                    $( $Name::$Variant => $name ),+
                }
            }

            /// Every name, in declaration order.
            pub fn names() -> Vec<&'static str> {
                Self::ALL.iter().map(|(n, _)| *n).collect()
            }
        }

        impl ::std::fmt::Display for $Name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl ::std::str::FromStr for $Name {
            type Err = $crate::config::names::UnknownName;
            fn from_str(s: &str) -> ::std::result::Result<Self, Self::Err> {
                Self::parse(s).ok_or_else(|| $crate::config::names::UnknownName {
                    what: $what,
                    name: s.to_string(),
                    known: Self::names().join(", "),
                })
            }
        }

        impl ::serde::Serialize for $Name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> ::std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $Name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> ::std::result::Result<Self, D::Error> {
                let s = <::std::string::String as ::serde::Deserialize>::deserialize(d)?;
                s.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
