// RMSNorm, alone and after the residual add, one pass over each row; attention for a few
// query positions per row; and, on CPUs with AVX-512 BF16, bf16 projections (kernels.py
// builds and loads this).
//
// torch runs RMSNorm as eight operations with float32 temporaries (4.6 ms for 1,536 rows x 576
// in bf16 on two cores, where one pass is ~0.3 ms). Each row is computed in float32 and rounded
// once, as torch's own ops do.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <torch/library.h>

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <tuple>
#include <type_traits>
#include <vector>

namespace {

// float -> T, rounded to nearest even; for bf16 in plain integer operations, which the
// compiler vectorises (c10's conversion is a branch per element).
template <typename T>
inline T rounded(float f) { return static_cast<T>(f); }

template <>
inline c10::BFloat16 rounded<c10::BFloat16>(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  uint32_t nearest = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  uint16_t out = static_cast<uint16_t>(f != f ? 0x7FC0u : nearest);
  return c10::BFloat16(out, c10::BFloat16::from_bits());
}

// Rows per task: parallel work only when a task has ~8k elements.
int64_t grain(int64_t width) { return std::max<int64_t>(1, 8192 / std::max<int64_t>(width, 1)); }

// One row's RMSNorm: out = src / sqrt(mean(src^2) + eps) * w, in float32, rounded once.
template <typename T>
inline void normalise_row(const T* __restrict__ src, const T* __restrict__ w,
                          T* __restrict__ out, int64_t width, float eps) {
  float squares = 0.f;
#pragma omp simd reduction(+ : squares)
  for (int64_t i = 0; i < width; ++i) {
    float v = static_cast<float>(src[i]);
    squares += v * v;
  }
  float scale = 1.f / std::sqrt(squares / static_cast<float>(width) + eps);
  for (int64_t i = 0; i < width; ++i) {
    out[i] = rounded<T>(static_cast<float>(src[i]) * scale * static_cast<float>(w[i]));
  }
}

template <typename T>
void rms_rows(const T* x, const T* w, T* out, int64_t rows, int64_t width, float eps) {
  at::parallel_for(0, rows, grain(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      normalise_row(x + r * width, w, out + r * width, width, eps);
    }
  });
}

template <typename T>
void add_rms_rows(const T* x, const T* y, const T* w, T* sum, T* out, int64_t rows, int64_t width,
                  float eps) {
  at::parallel_for(0, rows, grain(width), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const T* __restrict__ xr = x + r * width;
      const T* __restrict__ yr = y + r * width;
      T* __restrict__ s = sum + r * width;
#pragma omp simd
      for (int64_t i = 0; i < width; ++i) {
        s[i] = rounded<T>(static_cast<float>(xr[i]) + static_cast<float>(yr[i]));
      }
      normalise_row(s, w, out + r * width, width, eps);
    }
  });
}

void check_rows(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be on the CPU");
  TORCH_CHECK(t.dim() == 2 && t.is_contiguous(), name, " must be a contiguous [rows, width] tensor");
  TORCH_CHECK(t.scalar_type() == at::kFloat || t.scalar_type() == at::kBFloat16, name,
              " must be float32 or bfloat16");
}

void check_weight(const at::Tensor& weight, const at::Tensor& x) {
  TORCH_CHECK(weight.is_contiguous() && weight.numel() == x.size(1) &&
                  weight.scalar_type() == x.scalar_type(),
              "weight must match x's width and dtype");
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  check_rows(x, "x");
  check_weight(weight, x);
  auto out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "rms_norm", [&] {
    rms_rows<scalar_t>(x.data_ptr<scalar_t>(), weight.data_ptr<scalar_t>(),
                       out.data_ptr<scalar_t>(), x.size(0), x.size(1), static_cast<float>(eps));
  });
  return out;
}

std::tuple<at::Tensor, at::Tensor> add_rms_norm(const at::Tensor& x, const at::Tensor& y,
                                                const at::Tensor& weight, double eps) {
  check_rows(x, "x");
  check_rows(y, "y");
  TORCH_CHECK(x.sizes() == y.sizes() && x.scalar_type() == y.scalar_type(),
              "x and y must have one shape and dtype");
  check_weight(weight, x);
  auto sum = at::empty_like(x);
  auto out = at::empty_like(x);
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "add_rms_norm", [&] {
    add_rms_rows<scalar_t>(x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(),
                           weight.data_ptr<scalar_t>(), sum.data_ptr<scalar_t>(),
                           out.data_ptr<scalar_t>(), x.size(0), x.size(1),
                           static_cast<float>(eps));
  });
  return {sum, out};
}

// --- attention for a few query positions per row -------------------------------------------
//
// A decoding step's attention: per row and KV head a handful of queries (the query heads that
// share the KV head, times the new positions) against ~30-300 keys. PyTorch's CPU flash
// kernel is tuned for long query blocks and rounds the softmax weights to bf16 before the
// weighted sum; this reads bf16 (or float32) and computes scores, softmax and the weighted
// sum in float32, rounding the output once. Same results and layout as
// _scaled_dot_product_flash_attention_for_cpu (no dropout, not causal): out [B, H, Q, D] in
// the input dtype, the log-sum-exp [B, H, Q] in float32 (laid out [B, Q, H], as flash's); a
// fully masked query gets zeros and a log-sum-exp of 0, as from flash.
//
// bf16 with head dim 64 on AVX512-BF16 CPUs runs the two products in intrinsics (below); the
// plain loops, which the compiler vectorises one query-key dot at a time, ran at under a third
// of its speed (~10 against ~35 GFMA/s on one core, keys in cache).

// The queries one task takes against a KV head: their keys and values are read once for all.
constexpr int kBlock = 4;
// Head dims the generic path takes (the queries are held in a fixed array).
constexpr int64_t kMaxDim = 256;

inline float as_float(float v) { return v; }
inline float as_float(c10::BFloat16 v) {
  uint32_t bits = static_cast<uint32_t>(v.x) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline float as_float(bool keep) { return keep ? 0.f : -std::numeric_limits<float>::infinity(); }

// e^x for x <= 0 (a softmax's exponents), within ~2 ulp of expf, branch-free so that the
// loops around it vectorise (libm's expf is a call per element without -ffast-math);
// 0 below -87, where expf would be denormal, and for -inf.
inline float exp_nonpositive(float x) {
  float clamped = std::max(x, -87.f);
  float n = (clamped * 1.44269504f + 12582912.f) - 12582912.f;  // nearest integer
  float r = clamped - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  float y = p * r * r + r + 1.f;
  uint32_t bits = static_cast<uint32_t>(static_cast<int32_t>(n) + 127) << 23;
  float two_n;
  std::memcpy(&two_n, &bits, sizeof two_n);
  return x < -87.f ? 0.f : y * two_n;
}

// Element strides of a [B, H, rows, D] operand (D contiguous).
struct Strides {
  int64_t batch, head, row;
};

Strides strides_of(const at::Tensor& t) { return {t.stride(0), t.stride(1), t.stride(2)}; }

template <typename T, typename M>
struct Attention {
  const T* query;
  Strides qs;
  const T* keys;
  Strides ks;
  const T* values;
  Strides vs;
  const M* mask;  // nullptr: none; else [B, H, Q, P] (strides 0 where broadcast)
  Strides ms;
  T* out;      // [B, H, Q, D] contiguous
  float* lse;  // [B, Q, H] contiguous
  int64_t heads, group, queries, positions, dim;
  float scale;
};

// One task: queries q0 .. q0 + NQ of row b and query head h against their KV head.
template <typename T, typename M>
struct Task {
  const Attention<T, M>& a;
  int64_t b, h, q0;
  float* weights;  // NQ * positions floats of scratch: scores, then softmax weights

  const T* query(int i) const {
    return a.query + b * a.qs.batch + h * a.qs.head + (q0 + i) * a.qs.row;
  }
  const T* keys() const { return a.keys + b * a.ks.batch + (h / a.group) * a.ks.head; }
  const T* values() const { return a.values + b * a.vs.batch + (h / a.group) * a.vs.head; }
  T* out(int i) const { return a.out + ((b * a.heads + h) * a.queries + q0 + i) * a.dim; }
};

// Plain loops: weights[i][t] = q_i . k_t (unscaled). D: the head dim, or 0 for a.dim.
template <typename T, typename M, int D, int NQ>
void dot_keys(const Task<T, M>& task) {
  constexpr int64_t kDim = D > 0 ? D : kMaxDim;
  const int64_t dim = D > 0 ? D : task.a.dim, positions = task.a.positions;
  float qf[NQ][kDim];
  for (int i = 0; i < NQ; ++i) {
    const T* src = task.query(i);
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) qf[i][d] = as_float(src[d]);
  }
  const T* keys = task.keys();
  for (int64_t t = 0; t < positions; ++t) {
    const T* key = keys + t * task.a.ks.row;
    float kf[kDim];
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) kf[d] = as_float(key[d]);
    for (int i = 0; i < NQ; ++i) {
      float dot = 0.f;
#pragma omp simd reduction(+ : dot)
      for (int64_t d = 0; d < dim; ++d) dot += qf[i][d] * kf[d];
      task.weights[i * positions + t] = dot;
    }
  }
}

// Plain loops: out_i = sum_t weights[i][t] v_t * inverse[i], rounded once.
template <typename T, typename M, int D, int NQ>
void weigh_values(const Task<T, M>& task, const float* inverse) {
  constexpr int64_t kDim = D > 0 ? D : kMaxDim;
  const int64_t dim = D > 0 ? D : task.a.dim, positions = task.a.positions;
  float acc[NQ][kDim];
  for (int i = 0; i < NQ; ++i) std::fill(acc[i], acc[i] + dim, 0.f);
  const T* values = task.values();
  for (int64_t t = 0; t < positions; ++t) {
    const T* value = values + t * task.a.vs.row;
    float vf[kDim];
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) vf[d] = as_float(value[d]);
    for (int i = 0; i < NQ; ++i) {
      float w = task.weights[i * positions + t];
#pragma omp simd
      for (int64_t d = 0; d < dim; ++d) acc[i][d] += w * vf[d];
    }
  }
  for (int i = 0; i < NQ; ++i) {
    T* out = task.out(i);
#pragma omp simd
    for (int64_t d = 0; d < dim; ++d) out[d] = rounded<T>(acc[i][d] * inverse[i]);
  }
}

// Scores to softmax weights in place (scaled, masked), each query's log-sum-exp written and
// the reciprocal of its exp-sum returned in ``inverse``.
template <typename T, typename M, int NQ>
void softmax(const Task<T, M>& task, float* inverse) {
  const Attention<T, M>& a = task.a;
  const int64_t positions = a.positions;
  const float scale = a.scale;
  for (int i = 0; i < NQ; ++i) {
    float* __restrict__ row = task.weights + i * positions;
    if (a.mask != nullptr) {
      const M* __restrict__ bias =
          a.mask + task.b * a.ms.batch + task.h * a.ms.head + (task.q0 + i) * a.ms.row;
#pragma omp simd
      for (int64_t t = 0; t < positions; ++t) row[t] = row[t] * scale + as_float(bias[t]);
    } else {
#pragma omp simd
      for (int64_t t = 0; t < positions; ++t) row[t] *= scale;
    }
    float top = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : top)
    for (int64_t t = 0; t < positions; ++t) top = std::max(top, row[t]);
    float& lse = a.lse[(task.b * a.queries + task.q0 + i) * a.heads + task.h];
    if (top == -std::numeric_limits<float>::infinity()) {  // fully masked: zeros, as flash
      std::fill(row, row + positions, 0.f);
      inverse[i] = 0.f;
      lse = 0.f;
      continue;
    }
    float total = 0.f;
#pragma omp simd reduction(+ : total)
    for (int64_t t = 0; t < positions; ++t) {
      float e = exp_nonpositive(row[t] - top);
      row[t] = e;
      total += e;
    }
    inverse[i] = 1.f / total;
    lse = top + std::log(total);
  }
}

template <typename T, typename M, int D, int NQ>
void attend_block(const Task<T, M>& task) {
  float inverse[NQ];
  dot_keys<T, M, D, NQ>(task);
  softmax<T, M, NQ>(task, inverse);
  weigh_values<T, M, D, NQ>(task, inverse);
}

#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define COPYGEN_BF16_DOT 1

// Lane j: the sum of v[j]'s 16 lanes (a 16 x 16 transpose folded into the adds).
inline __m512 lane_sums(const __m512 (&v)[16]) {
  __m512 pairs[8];  // per 128-bit lane: [v2k's 0+2, v2k+1's 0+2, v2k's 1+3, v2k+1's 1+3]
  for (int k = 0; k < 8; ++k) {
    pairs[k] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * k], v[2 * k + 1]),
                             _mm512_unpackhi_ps(v[2 * k], v[2 * k + 1]));
  }
  __m512 quads[4];  // per 128-bit lane: v4k .. v4k+3, each summed over that lane
  for (int k = 0; k < 4; ++k) {
    __m512d lo = _mm512_unpacklo_pd(_mm512_castps_pd(pairs[2 * k]),
                                    _mm512_castps_pd(pairs[2 * k + 1]));
    __m512d hi = _mm512_unpackhi_pd(_mm512_castps_pd(pairs[2 * k]),
                                    _mm512_castps_pd(pairs[2 * k + 1]));
    quads[k] = _mm512_add_ps(_mm512_castpd_ps(lo), _mm512_castpd_ps(hi));
  }
  __m512 low = _mm512_add_ps(_mm512_shuffle_f32x4(quads[0], quads[1], 0x44),
                             _mm512_shuffle_f32x4(quads[0], quads[1], 0xEE));
  __m512 high = _mm512_add_ps(_mm512_shuffle_f32x4(quads[2], quads[3], 0x44),
                              _mm512_shuffle_f32x4(quads[2], quads[3], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_f32x4(low, high, 0x88),
                       _mm512_shuffle_f32x4(low, high, 0xDD));
}

inline __m512bh load_bf16(const c10::BFloat16* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}

// weights[i][t] = q_i . k_t, 16 keys at a time: each dot is two bf16 pair-dot instructions
// into float32 (the products are exact, the sums float32), the 16 dots' lanes summed at once.
template <typename M, int NQ>
void dot_keys_bf16(const Task<c10::BFloat16, M>& task) {
  const int64_t positions = task.a.positions, stride = task.a.ks.row;
  const c10::BFloat16* keys = task.keys();
  for (int i = 0; i < NQ; ++i) {
    const __m512bh low = load_bf16(task.query(i)), high = load_bf16(task.query(i) + 32);
    float* row = task.weights + i * positions;
    for (int64_t t0 = 0; t0 < positions; t0 += 16) {
      __m512 dots[16];
      for (int j = 0; j < 16; ++j) {
        const c10::BFloat16* key = keys + std::min(t0 + j, positions - 1) * stride;
        dots[j] = _mm512_dpbf16_ps(_mm512_dpbf16_ps(_mm512_setzero_ps(), low, load_bf16(key)),
                                   high, load_bf16(key + 32));
      }
      const int64_t count = std::min<int64_t>(16, positions - t0);
      _mm512_mask_storeu_ps(row + t0, static_cast<__mmask16>((1u << count) - 1),
                            lane_sums(dots));
    }
  }
}

// Rounded to bf16 (nearest even, as rounded<>), in the high half of each 32-bit lane.
inline __m512i bf16_high(__m512 f) {
  const __m512i bits = _mm512_castps_si512(f);
  const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
  __m512i up = _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), odd));
  up = _mm512_mask_mov_epi32(up, _mm512_cmp_ps_mask(f, f, _CMP_UNORD_Q),
                             _mm512_set1_epi32(0x7FC00000));
  return _mm512_and_si512(up, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u)));
}

// out_i = sum_t weights[i][t] v_t * inverse[i] with float32 weights. A 32-bit lane of bf16
// values holds an even and an odd element; as floats they are the lane shifted left 16 and
// the lane's high half, so the even and odd elements are summed apart and their rounded
// halves put back together at the end (no shuffles).
template <typename M, int NQ>
void weigh_values_bf16(const Task<c10::BFloat16, M>& task, const float* inverse) {
  const int64_t positions = task.a.positions, stride = task.a.vs.row;
  const c10::BFloat16* values = task.values();
  const __m512i high_half = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
  __m512 even[NQ][2], odd[NQ][2];
  for (int i = 0; i < NQ; ++i) {
    for (int half = 0; half < 2; ++half) even[i][half] = odd[i][half] = _mm512_setzero_ps();
  }
  for (int64_t t = 0; t < positions; ++t) {
    const c10::BFloat16* value = values + t * stride;
    __m512 value_even[2], value_odd[2];
    for (int half = 0; half < 2; ++half) {
      const __m512i pairs = _mm512_loadu_si512(value + 32 * half);
      value_even[half] = _mm512_castsi512_ps(_mm512_slli_epi32(pairs, 16));
      value_odd[half] = _mm512_castsi512_ps(_mm512_and_si512(pairs, high_half));
    }
    for (int i = 0; i < NQ; ++i) {
      const __m512 w = _mm512_set1_ps(task.weights[i * positions + t]);
      for (int half = 0; half < 2; ++half) {
        even[i][half] = _mm512_fmadd_ps(w, value_even[half], even[i][half]);
        odd[i][half] = _mm512_fmadd_ps(w, value_odd[half], odd[i][half]);
      }
    }
  }
  for (int i = 0; i < NQ; ++i) {
    const __m512 scale = _mm512_set1_ps(inverse[i]);
    c10::BFloat16* out = task.out(i);
    for (int half = 0; half < 2; ++half) {
      const __m512i low = _mm512_srli_epi32(bf16_high(_mm512_mul_ps(even[i][half], scale)), 16);
      const __m512i high = bf16_high(_mm512_mul_ps(odd[i][half], scale));
      _mm512_storeu_si512(out + 32 * half, _mm512_or_si512(low, high));
    }
  }
}

template <typename M, int NQ>
void attend_block_bf16(const Task<c10::BFloat16, M>& task) {
  float inverse[NQ];
  dot_keys_bf16<M, NQ>(task);
  softmax<c10::BFloat16, M, NQ>(task, inverse);
  weigh_values_bf16<M, NQ>(task, inverse);
}
#endif

// ``count`` (1 .. kBlock) queries of one task; the generic path takes one query at a time.
template <typename T, typename M>
void attend_queries(const Task<T, M>& task, int64_t count) {
  if (task.a.dim != 64) {
    for (int64_t i = 0; i < count; ++i) {
      attend_block<T, M, 0, 1>(Task<T, M>{task.a, task.b, task.h, task.q0 + i, task.weights});
    }
    return;
  }
#ifdef COPYGEN_BF16_DOT
  if constexpr (std::is_same_v<T, c10::BFloat16>) {
    switch (count) {
      case 1: return attend_block_bf16<M, 1>(task);
      case 2: return attend_block_bf16<M, 2>(task);
      case 3: return attend_block_bf16<M, 3>(task);
      default: return attend_block_bf16<M, kBlock>(task);
    }
  }
#endif
  switch (count) {
    case 1: return attend_block<T, M, 64, 1>(task);
    case 2: return attend_block<T, M, 64, 2>(task);
    case 3: return attend_block<T, M, 64, 3>(task);
    default: return attend_block<T, M, 64, kBlock>(task);
  }
}

template <typename T, typename M>
void attend_all(const Attention<T, M>& a, int64_t batch) {
  const int64_t blocks = (a.queries + kBlock - 1) / kBlock;
  const int64_t tasks = batch * a.heads * blocks;
  // Parallel work only when a task has ~32k multiply-adds.
  const int64_t work = std::min<int64_t>(a.queries, kBlock) * a.positions * a.dim * 2;
  const int64_t task_grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(work, 1));
  at::parallel_for(0, tasks, task_grain, [&](int64_t begin, int64_t end) {
    std::vector<float> weights(kBlock * std::max<int64_t>(a.positions, 1));
    for (int64_t task = begin; task < end; ++task) {
      const int64_t block = task % blocks;
      const int64_t h = (task / blocks) % a.heads;
      const int64_t b = task / blocks / a.heads;
      const int64_t q0 = block * kBlock;
      const int64_t count = std::min<int64_t>(kBlock, a.queries - q0);
      attend_queries(Task<T, M>{a, b, h, q0, weights.data()}, count);
    }
  });
}

template <typename T, typename M>
void attend_with(const at::Tensor& query, const at::Tensor& keys, const at::Tensor& values,
                 const M* mask_data, const at::Tensor& mask, at::Tensor& out, at::Tensor& lse,
                 double scale) {
  const int64_t heads = query.size(1);
  Attention<T, M> a{query.data_ptr<T>(),  strides_of(query),
                    keys.data_ptr<T>(),   strides_of(keys),
                    values.data_ptr<T>(), strides_of(values),
                    mask_data,            mask.defined() ? strides_of(mask) : Strides{0, 0, 0},
                    out.data_ptr<T>(),    lse.data_ptr<float>(),
                    heads,                heads / keys.size(1),
                    query.size(2),        keys.size(2),
                    query.size(3),        static_cast<float>(scale)};
  attend_all(a, query.size(0));
}

template <typename T>
void attend_typed(const at::Tensor& query, const at::Tensor& keys, const at::Tensor& values,
                  const at::Tensor& mask, at::Tensor& out, at::Tensor& lse, double scale) {
  if (!mask.defined()) {
    attend_with<T, bool>(query, keys, values, nullptr, mask, out, lse, scale);
  } else if (mask.scalar_type() == at::kBool) {
    attend_with<T, bool>(query, keys, values, mask.data_ptr<bool>(), mask, out, lse, scale);
  } else if (mask.scalar_type() == at::kFloat) {
    attend_with<T, float>(query, keys, values, mask.data_ptr<float>(), mask, out, lse, scale);
  } else {
    attend_with<T, T>(query, keys, values, mask.data_ptr<T>(), mask, out, lse, scale);
  }
}

// D contiguous, else a contiguous copy.
at::Tensor rows_contiguous(const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); }

std::tuple<at::Tensor, at::Tensor> decode_attention(const at::Tensor& query_in,
                                                    const at::Tensor& keys_in,
                                                    const at::Tensor& values_in,
                                                    const std::optional<at::Tensor>& mask_in,
                                                    double scale) {
  for (const at::Tensor* t : {&query_in, &keys_in, &values_in}) {
    TORCH_CHECK(t->device().is_cpu() && t->dim() == 4,
                "query, keys and values must be [batch, heads, positions, head dim] CPU tensors");
    TORCH_CHECK(t->scalar_type() == query_in.scalar_type(),
                "query, keys and values must have one dtype");
  }
  TORCH_CHECK(query_in.scalar_type() == at::kFloat || query_in.scalar_type() == at::kBFloat16,
              "query must be float32 or bfloat16");
  const int64_t batch = query_in.size(0), heads = query_in.size(1), queries = query_in.size(2),
                dim = query_in.size(3), kv_heads = keys_in.size(1),
                positions = keys_in.size(2);
  TORCH_CHECK(keys_in.sizes() == values_in.sizes() && keys_in.size(0) == batch &&
                  keys_in.size(3) == dim && kv_heads > 0 && heads % kv_heads == 0,
              "keys and values must be [batch, kv heads, positions, head dim] with the query's "
              "batch and head dim, and the query heads a multiple of the kv heads");
  TORCH_CHECK(dim <= kMaxDim, "head dim above ", kMaxDim);
  at::Tensor query = rows_contiguous(query_in), keys = rows_contiguous(keys_in),
             values = rows_contiguous(values_in);
  auto out = at::empty({batch, heads, queries, dim}, query.options());
  auto lse = at::empty({batch, queries, heads}, query.options().dtype(at::kFloat));
  at::Tensor mask;
  if (mask_in.has_value()) {
    const at::Tensor& given = *mask_in;
    TORCH_CHECK(given.device().is_cpu() &&
                    (given.scalar_type() == at::kBool || given.scalar_type() == at::kFloat ||
                     given.scalar_type() == query.scalar_type()),
                "mask must be bool, float32 or the query's dtype");
    mask = given.expand({batch, heads, queries, positions});
    if (positions > 1 && mask.stride(3) != 1) mask = mask.contiguous();
  }
  if (out.numel() == 0) return {out, lse.transpose(1, 2)};
  if (query.scalar_type() == at::kBFloat16) {
    attend_typed<c10::BFloat16>(query, keys, values, mask, out, lse, scale);
  } else {
    attend_typed<float>(query, keys, values, mask, out, lse, scale);
  }
  return {out, lse.transpose(1, 2)};
}


// --- projections: y = x @ W.T in bf16 -------------------------------------------------------
//
// oneDNN's bf16 matmul on CPUs with AVX-512 BF16 and no AMX reads the weights at about half
// this machine's memory bandwidth at a few rows (a decoding step of the 135M model at 1-6 rows:
// 14-17 ms, against 8 ms for one pass over its 269 MB), and a step at a few rows is bound by
// reading the weights. Here the weight is packed once into panels of 64 output columns, each
// input-feature pair of a panel one 256-byte line ([panels][in / 2][64][2]), so a panel
// streams through memory once per call while `vdpbf16ps` adds each row's products into fp32
// accumulators (6 rows x 64 columns in registers); each result is rounded to bf16 once, as
// oneDNN does. Every row is computed alone, in the same order whatever the row count.
#if defined(__AVX512F__) && defined(__AVX512BF16__)
#define COPYGEN_BF16_MATMUL 1

constexpr int64_t kPanel = 64;   // output columns per packed panel: 4 x 16 floats
constexpr int64_t kTileRows = 6;  // rows per register tile: 6 x 4 accumulators

at::Tensor pack_linear(const at::Tensor& weight) {
  TORCH_CHECK(weight.device().is_cpu() && weight.dim() == 2 &&
                  weight.scalar_type() == at::kBFloat16,
              "weight must be a bfloat16 [out, in] CPU tensor");
  const int64_t out = weight.size(0), in = weight.size(1);
  TORCH_CHECK(in % 2 == 0 && in > 0 && out > 0, "in-features must be even and positive");
  const int64_t panels = (out + kPanel - 1) / kPanel, pairs = in / 2;
  const at::Tensor w = weight.contiguous();
  at::Tensor packed = at::zeros({panels, pairs, kPanel, 2}, weight.options());
  const auto* src = reinterpret_cast<const uint32_t*>(w.data_ptr());  // a pair per element
  auto* dst = reinterpret_cast<uint32_t*>(packed.data_ptr());
  at::parallel_for(0, panels, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t columns = std::min(kPanel, out - p * kPanel);
      for (int64_t kk = 0; kk < pairs; ++kk)
        for (int64_t c = 0; c < columns; ++c)
          dst[(p * pairs + kk) * kPanel + c] = src[(p * kPanel + c) * pairs + kk];
    }
  });
  return packed;
}

// Rows [0, MR) of x against `NJ` x 16 columns of a panel, written to out (`columns` of them).
template <int MR, int NJ>
inline void matmul_tile(const c10::BFloat16* x, int64_t ldx, const uint32_t* panel,
                        int64_t pairs, c10::BFloat16* out, int64_t ldo, int64_t columns) {
  __m512 acc[MR][NJ];
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ; ++j) acc[m][j] = _mm512_setzero_ps();
  const auto* pairs_of_x = reinterpret_cast<const char*>(x);
  for (int64_t kk = 0; kk < pairs; ++kk) {
    const uint32_t* line = panel + kk * kPanel;
    __m512bh w[NJ];
    for (int j = 0; j < NJ; ++j) w[j] = (__m512bh)_mm512_loadu_si512(line + 16 * j);
    for (int m = 0; m < MR; ++m) {
      int32_t pair;
      std::memcpy(&pair, pairs_of_x + (m * ldx + 2 * kk) * 2, 4);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
      for (int j = 0; j < NJ; ++j) acc[m][j] = _mm512_dpbf16_ps(acc[m][j], a, w[j]);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int j = 0; j < NJ && j * 16 < columns; ++j) {
      const __m256i rounded = (__m256i)_mm512_cvtneps_pbh(acc[m][j]);
      const int64_t left = columns - j * 16;
      const __mmask16 keep = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
      _mm256_mask_storeu_epi16(out + m * ldo + j * 16, keep, rounded);
    }
}

template <int NJ>
void matmul_rows(int64_t rows, const c10::BFloat16* x, int64_t ldx, const uint32_t* panel,
                 int64_t pairs, c10::BFloat16* out, int64_t ldo, int64_t columns) {
  int64_t r = 0;
  for (; r + kTileRows <= rows; r += kTileRows)
    matmul_tile<kTileRows, NJ>(x + r * ldx, ldx, panel, pairs, out + r * ldo, ldo, columns);
  const c10::BFloat16* xr = x + r * ldx;
  c10::BFloat16* outr = out + r * ldo;
  switch (rows - r) {
    case 1: matmul_tile<1, NJ>(xr, ldx, panel, pairs, outr, ldo, columns); break;
    case 2: matmul_tile<2, NJ>(xr, ldx, panel, pairs, outr, ldo, columns); break;
    case 3: matmul_tile<3, NJ>(xr, ldx, panel, pairs, outr, ldo, columns); break;
    case 4: matmul_tile<4, NJ>(xr, ldx, panel, pairs, outr, ldo, columns); break;
    case 5: matmul_tile<5, NJ>(xr, ldx, panel, pairs, outr, ldo, columns); break;
    default: break;
  }
}

// Rows per work item: a thread's items share each panel while it is in its L2 (a panel of the
// 135M model is 74-197 KB). Half panels as items, to share a 576-column projection's 9 panels
// evenly between threads, were measured slower at a few rows (each thread then streamed every
// other 128 bytes of a panel, and the prefetcher read the rest too).
constexpr int64_t kBlockRows = 8 * kTileRows;

at::Tensor packed_linear(const at::Tensor& x_in, const at::Tensor& packed, int64_t out_features) {
  TORCH_CHECK(x_in.device().is_cpu() && x_in.dim() == 2 && x_in.scalar_type() == at::kBFloat16,
              "x must be a bfloat16 [rows, in] CPU tensor");
  TORCH_CHECK(packed.dim() == 4 && packed.size(2) == kPanel && packed.size(3) == 2 &&
                  packed.scalar_type() == at::kBFloat16 && packed.is_contiguous(),
              "packed must come from pack_linear");
  const int64_t panels = packed.size(0), pairs = packed.size(1);
  TORCH_CHECK(x_in.size(1) == 2 * pairs, "x has ", x_in.size(1), " features, the weight ",
              2 * pairs);
  TORCH_CHECK(out_features > (panels - 1) * kPanel && out_features <= panels * kPanel,
              "out_features does not match the packed weight");
  const at::Tensor x = x_in.stride(1) == 1 ? x_in : x_in.contiguous();
  const int64_t rows = x.size(0), ldx = x.stride(0);
  at::Tensor out = at::empty({rows, out_features}, x.options());
  if (rows == 0) return out;
  const auto* xp = x.data_ptr<c10::BFloat16>();
  const auto* wp = reinterpret_cast<const uint32_t*>(packed.data_ptr());
  auto* op = out.data_ptr<c10::BFloat16>();
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  at::parallel_for(0, panels * blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      const int64_t p = item / blocks, first_row = (item % blocks) * kBlockRows;
      const int64_t columns = std::min(kPanel, out_features - p * kPanel);
      matmul_rows<4>(std::min(kBlockRows, rows - first_row), xp + first_row * ldx, ldx,
                     wp + p * pairs * kPanel, pairs, op + first_row * out_features + p * kPanel,
                     out_features, columns);
    }
  });
  return out;
}
#endif  // AVX-512 BF16

}  // namespace

TORCH_LIBRARY(copygen, m) {
  m.def("rms_norm(Tensor x, Tensor weight, float eps) -> Tensor");
  m.def("add_rms_norm(Tensor x, Tensor y, Tensor weight, float eps) -> (Tensor, Tensor)");
  m.def("decode_attention(Tensor query, Tensor keys, Tensor values, Tensor? mask, float scale) "
        "-> (Tensor, Tensor)");
#ifdef COPYGEN_BF16_MATMUL
  m.def("pack_linear(Tensor weight) -> Tensor");
  m.def("packed_linear(Tensor x, Tensor packed, int out_features) -> Tensor");
#endif
}

TORCH_LIBRARY_IMPL(copygen, CPU, m) {
  m.impl("rms_norm", rms_norm);
  m.impl("add_rms_norm", add_rms_norm);
  m.impl("decode_attention", decode_attention);
#ifdef COPYGEN_BF16_MATMUL
  m.impl("pack_linear", pack_linear);
  m.impl("packed_linear", packed_linear);
#endif
}
