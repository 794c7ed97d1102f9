#!/usr/bin/env python3
"""Writes the fuzz target's seed corpus (tests/fuzz/corpus/): one file per class of call that
fuzz_conv2d.cpp decodes, so that fuzzing starts from every front door, every hostile argument class
the project has met, and NaN/Inf data. Each seed is the byte string the decoder reads, field by
field, in its order. Run: python3 tests/fuzz/make_corpus.py"""
import os

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")

# Byte values the decoder maps to special cases (see bytes:: in fuzz_conv2d.cpp).
STEP = {1: 8, 2: 9, 3: 10, 4: 11, "zero": 0, "neg": 1, "INT_MAX": 2, "2^30": 3, "1000+": 4}  # 1 + b % 4 from b % 16 >= 5
PAD = {0: 5, 1: 6, 2: 7, 3: 8, "neg": 0, "INT_MAX": 1, "2^30": 2}  # b % 5 from b % 16 >= 3
BAD_ENUM = 45       # b % 23 == 22 and b % 3 == 0: the value 77
VALUE = {"nan": 0, "inf": 1, "-inf": 2, "1e300": 3, "zero": 4, "half": 161}  # (b - 128) / 64 from b % 32 >= 5
ALGO = {"automatic": 0, "direct": 1, "im2col": 2, "fft": 3, "cufft": 4}
MODE = {"full": 0, "same": 1, "valid": 2}
BORDER = {"zero": 0, "constant": 1, "replicate": 2, "reflect": 3, "symmetric": 4, "circular": 5}
ACCURACY = {"automatic": 0, "componentwise": 1, "normwise": 2}
WIDE = 7            # a data seed byte with seed % 4 == 3: magnitudes from 1e-6 to 1e6


def extent(n):
    return n - 1 if n >= 1 else (0 if n == 0 else 1)  # 1 + b % max; 0 -> 0; 1 -> -3


def image(name, precision=0, rows=17, cols=23, k=(3, 3), gap=1, mode="same", edge="reflect", value="half",
          strides=(1, 1), dilations=(1, 1), correlate=0, algo="automatic", threads=2, tuning=b"\0", plan=0,
          alias=False, specials=False, accuracy="automatic", data=8):
    b = bytes([precision, extent(rows), extent(cols), extent(k[0]), extent(k[1]), gap,
               MODE.get(mode, mode), BORDER.get(edge, edge), VALUE[value], STEP[strides[0]], STEP[strides[1]],
               STEP[dilations[0]], STEP[dilations[1]], correlate, ALGO.get(algo, algo), threads + 1])
    b += tuning + bytes([ACCURACY.get(accuracy, accuracy), plan, 0 if alias else 1, 0 if specials else 1, data, 1, 2, 9])
    write(name, b)


# Images of pixels: the first byte 248 + the (input, output) pair of fuzz_conv2d.cpp's pixel_image list.
PIXELS = ["u8_u8", "u8_float", "u16_u16", "s16_s16", "float_u8", "float_float", "double_u16", "u8_double"]


def pixels(name, kind, rows=20, cols=21, k=(3, 4), channels=3, gap=1, mode="same", edge="replicate", value="half",
           algo="automatic", integer_kernel=0, seed=5):
    b = bytes([248 + PIXELS.index(kind), extent(rows), extent(cols), extent(k[0]), extent(k[1]), channels, gap,
               MODE.get(mode, mode), BORDER.get(edge, edge), VALUE[value], STEP[1], STEP[1], STEP[1], STEP[1], 0,
               ALGO.get(algo, algo), 1, 0, 0, integer_kernel, seed, 1])
    write(name, b)


def layer(name, precision=2, n=2, groups=1, c=4, k=6, hw=(9, 11), rs=(3, 3), strides=(1, 1), dilations=(1, 1),
          pads=(1, 1), edge="zero", algo="automatic", threads=2, tuning=b"\0", bias=1, plan=0, specials=False,
          extra_channel=False, accuracy="automatic", data=2):
    b = bytes([precision, extent(n) % 3 if n > 0 else 0, groups, extent(c), extent(k), extent(hw[0]), extent(hw[1]),
               extent(rs[0]), extent(rs[1]), STEP[strides[0]], STEP[strides[1]], STEP[dilations[0]], STEP[dilations[1]],
               PAD[pads[0]], PAD[pads[1]], BORDER.get(edge, edge), ALGO.get(algo, algo), threads])
    b += tuning + bytes([ACCURACY.get(accuracy, accuracy), bias, plan, 0 if specials else 1,
                         0 if extra_channel else 1, data, 4, 5, 6, 7])
    write(name, b)


def write(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)


def main():
    os.makedirs(OUT, exist_ok=True)
    for algo in ALGO:
        image(f"image_same_reflect_{algo}", algo=algo)
        image(f"image_plan_full_{algo}", algo=algo, mode="full", plan=1, precision=1)
    image("image_dilation_int_max", dilations=("INT_MAX", "INT_MAX"), edge="circular")
    image("image_dilation_int_max_fft", dilations=("INT_MAX", 1), algo="fft")
    image("image_stride_int_max_full", strides=("INT_MAX", "INT_MAX"), mode="full")
    image("image_stride_2p30", strides=("2^30", 2), mode="same", edge="symmetric")
    image("image_stride_zero", strides=("zero", 1))
    image("image_dilation_negative", dilations=(1, "neg"))
    image("image_bad_mode", mode=BAD_ENUM)
    image("image_bad_border", edge=BAD_ENUM)
    image("image_bad_algo", algo=BAD_ENUM)
    image("image_negative_rows", rows=-1)
    image("image_empty_kernel", k=(0, 3))
    image("image_valid_too_small", rows=3, k=(9, 9), mode="valid")
    image("image_nan_edge_value", edge="constant", value="nan", k=(9, 9))
    image("image_inf_edge_value_fft", edge="constant", value="inf", algo="fft")
    image("image_overflowing_edge_value", edge="constant", value="1e300")
    image("image_alias", alias=True)
    image("image_nan_data_automatic", specials=True, k=(9, 9))
    image("image_nan_data_fft", specials=True, algo="fft")
    image("image_nan_data_plan", specials=True, plan=1, k=(9, 7))
    image("image_negative_threads", threads=-1)
    image("image_bad_tuning", tuning=bytes([1 | 2 | 4, BAD_ENUM, 0, 0, 0, 0, BAD_ENUM]))
    image("image_tiny_fft_cap", algo="fft", tuning=bytes([1, 1, 2, 3, 1, 1]))
    image("image_measure", tuning=bytes([16, 1]), k=(9, 9))
    image("image_wide_range_automatic", rows=40, cols=40, k=(9, 9), data=WIDE)
    image("image_wide_range_fft_contract", rows=40, cols=37, k=(9, 7), algo="fft", accuracy="componentwise",
          data=WIDE, mode="full", edge="zero")
    image("image_wide_range_fft_normwise", rows=33, cols=40, k=(7, 9), algo="fft", accuracy="normwise", data=WIDE)
    image("image_bad_accuracy", accuracy=BAD_ENUM)
    layer("layer_basic")
    layer("layer_wide_range_automatic", data=WIDE)
    layer("layer_fft_contract_refused", algo="fft", accuracy="componentwise")
    layer("layer_bad_accuracy", accuracy=BAD_ENUM)
    layer("layer_plan_fft", algo="fft", plan=1)
    layer("layer_depthwise", groups=4, c=4, k=4)
    layer("layer_groups_mismatch", groups=3, c=4)
    layer("layer_weights_channels_wrong", extra_channel=True)
    layer("layer_pad_2p30_stride_2p30", pads=("2^30", "2^30"), strides=("2^30", "2^30"), edge="circular")
    layer("layer_pad_int_max", pads=("INT_MAX", 1))
    layer("layer_negative_pad", pads=("neg", 1))
    layer("layer_constant_border", edge="constant")
    layer("layer_bad_border", edge=BAD_ENUM)
    layer("layer_nan_input", specials=True)
    layer("layer_nan_input_fft", specials=True, algo="fft")
    layer("layer_dilation_int_max", dilations=("INT_MAX", 1), pads=(1, 1))
    layer("layer_im2col_tiny_workspace", algo="im2col", tuning=bytes([2, 3]))
    for kind in PIXELS:
        pixels("pixels_" + kind, kind)
    pixels("pixels_u8_sobel_exact", "u8_u8", integer_kernel=1, edge="reflect")
    pixels("pixels_u16_fft", "u16_u16", k=(9, 9), algo="fft", channels=1)
    pixels("pixels_rgba_constant", "float_u8", channels=4, edge="constant", value="nan")
    pixels("pixels_five_channels", "u8_u8", channels=5)


if __name__ == "__main__":
    main()
