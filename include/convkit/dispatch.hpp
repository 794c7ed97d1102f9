// convkit/dispatch.hpp - which backend serves a call.
//
// An explicitly named algorithm is used if this program has it, and otherwise throws
// convkit::unavailable naming the algorithm and the CMake target that provides it.
// algorithm::automatic asks every backend in the program for its cost estimate for the problem
// (seconds, from each backend's own model; +inf where it cannot or should not serve it, e.g. fft
// when the data hold NaN or Inf, since an FFT smears one NaN over the whole output) and takes the
// cheapest; on a tie the earlier algorithm in enum order, so direct wins ties. Single images and
// layers are one problem (detail/problem.hpp), so they are chosen by one rule (detail/choice.hpp,
// which also says when the data are scanned for NaN and Inf, and how decisions are remembered).
// The cost models' constants come from the profile (profile.hpp): measured on this machine by
// convkit_calibrate, else built in. tuning::choice = choice_rule::measure times the candidates
// instead, once per problem.
#pragma once

#include "version.hpp"

#include "detail/backend.hpp"
#include "detail/choice.hpp"
#include "options.hpp"

CONVKIT_NAMESPACE_BEGIN

/// The algorithm that algorithm::automatic picks for a float image of rows x cols and a kernel of
/// k_rows x k_cols with finite data (for reports). Throws like output_shape().
inline algorithm automatic_choice(index_t rows, index_t cols, index_t k_rows, index_t k_cols, const options& opt) {
  detail::problem_request r = detail::image_request(rows, cols, k_rows, k_cols, opt, sizeof(float));
  r.algo = algorithm::automatic;
  detail::conv_problem p = detail::make_problem(r);
  return detail::estimate_backend(p, [] { return true; }).chosen->algo;
}

CONVKIT_NAMESPACE_END
