// The blog post's naive conv2d, kept as the baseline every benchmark compares against: four nested
// loops, 'valid' cross-correlation with a stride, textbook C++ with no attempt at speed.
#pragma once

#include <convkit/view.hpp>

namespace convkit::seed {

inline void naive_conv2d(view2d<const float> img, view2d<const float> k, view2d<float> out, int stride = 1) {
  for (index_t i = 0; i < out.rows(); ++i)
    for (index_t j = 0; j < out.cols(); ++j) {
      float sum = 0;
      for (index_t u = 0; u < k.rows(); ++u)
        for (index_t v = 0; v < k.cols(); ++v) sum += img(i * stride + u, j * stride + v) * k(u, v);
      out(i, j) = sum;
    }
}

}  // namespace convkit::seed
