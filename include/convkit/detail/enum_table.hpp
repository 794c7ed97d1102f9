// Each of convkit's enums is listed once, beside its definition, as a table of enumerators and their
// names (enum_table<E>); naming, validating and parsing a value all read that one table.
#pragma once

#include "../version.hpp"

#include <optional>
#include <string_view>

CONVKIT_NAMESPACE_BEGIN
namespace detail {

/// One enumerator: its value, its name (a word, as profiles and command lines spell it) and, where
/// people read it differently, a label ("AVX-512" for cpu::isa::avx512).
template <class E>
struct enum_entry {
  E value;
  const char* name;
  const char* label = nullptr;
};

/// Specialised beside each enum E: `static constexpr const char* type` (its C++ name, for error
/// messages) and `static constexpr enum_entry<E> entries[]`, every enumerator once.
template <class E>
struct enum_table;

template <class E>
constexpr const enum_entry<E>* enum_find(E e) noexcept {
  for (const enum_entry<E>& x : enum_table<E>::entries)
    if (x.value == e) return &x;
  return nullptr;
}

/// The name of e, or "?" for a value outside E's enumerators.
template <class E>
constexpr const char* enum_name(E e) noexcept {
  const enum_entry<E>* x = enum_find(e);
  return x != nullptr ? x->name : "?";
}

/// The label of e (its name where it has none).
template <class E>
constexpr const char* enum_label(E e) noexcept {
  const enum_entry<E>* x = enum_find(e);
  return x == nullptr ? "?" : x->label != nullptr ? x->label : x->name;
}

/// Whether e is one of E's enumerators (a value cast from an integer may not be).
template <class E>
constexpr bool enum_valid(E e) noexcept {
  return enum_find(e) != nullptr;
}

/// The enumerator named `name`, if any.
template <class E>
constexpr std::optional<E> enum_parse(std::string_view name) noexcept {
  for (const enum_entry<E>& x : enum_table<E>::entries)
    if (name == x.name) return x.value;
  return std::nullopt;
}

}  // namespace detail
CONVKIT_NAMESPACE_END
