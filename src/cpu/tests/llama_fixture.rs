//! Outputs recorded from llama.cpp c392e509's CPU kernels (GCC, -O3 -march=native, AVX2), run
//! outside this repository on the SplitMix64 inputs that `llama_oracle.rs` regenerates.
//! Do not edit. Inputs are redrawn by the test from the same SplitMix64 stream.

/// Seed of the input stream.
pub(super) const SEED: u64 = 0x51ce0001;
/// Rows of 1024 activations quantised per format.
pub(super) const QUANT_ROWS: usize = 24;
/// Dots per (type, length).
pub(super) const REPS: usize = 6;

/// FNV-1a of llama.cpp's Q8_0, Q8_1 and Q8_K output per row.
pub(super) const QUANT_HASHES: [[u64; 3]; 24] = [
    [0x35703f2676e0a7c0, 0x82a17fadbacafe69, 0x3deaf863498f9617],
    [0x86fc35779b1ba9f9, 0x8264c0ff035fc64d, 0x3c02aa5a8e63abde],
    [0x9e12715a9b5d713d, 0x157686783eab9ebf, 0xa127f59f8f7c2657],
    [0x79cc52a2fbbe39ba, 0x524a964430d7a85d, 0x86870beed9a530dd],
    [0xfb6b3c0326bc0636, 0xda34c013152f1874, 0x0f0579dc35fcdb0f],
    [0xcf33bb286a8f176b, 0x12225af2f300c964, 0x670a47a08f2198a8],
    [0xea8b517987857b1e, 0x50760552dc598f97, 0x4aae095034caf6a9],
    [0x5be3f6ee768b194b, 0x77aa40e290bb63e1, 0xf3576d5b1961603a],
    [0x88603f194c8b026d, 0xba4cbe85aba37c95, 0xbbb5ce8cc9aaa2f2],
    [0xa40ab8eb2acce0c9, 0x6ce4de1207b492b6, 0xa2fad89854d45d84],
    [0x9d956b7a9cad4646, 0xcb838c9a4414e894, 0xdb939c8ef499b0ec],
    [0x97548669cfe718eb, 0xe6e58df972b563a7, 0xa690b1eeb41d3459],
    [0x5de8b76d0c67c671, 0xe252366b6931ce9e, 0xd3e4fa453f11f7fb],
    [0x914f066173895743, 0xbdd72401f28943e0, 0x6dc51cabf04b03cb],
    [0x926511775e48fa6e, 0xdf523e161a9ef10f, 0x4cbab92e144700d8],
    [0xf17b3e1d9e90c6a7, 0xaa6fdec2b07b533f, 0xdf906dc84a83389c],
    [0x540ab2f3a4935e94, 0x35b497bf398a0b89, 0x3f1f0b21d74a52a0],
    [0x231646f1fa948864, 0xa630d983de00d075, 0xc274fd992d825f45],
    [0x8626f4b89565b735, 0x130e63ad44d63e33, 0x99da3a244fc99df3],
    [0x5c7f0ace4c5d81a7, 0x5d4f212206c38fde, 0xf3bfe30ea3c8512d],
    [0x8388f637d39f4b5f, 0x9f9bb48858c821d1, 0x86e71112efbc036a],
    [0x41b885d2456292a7, 0x3be344a55a1577e4, 0xe2525968406895fd],
    [0x4830526cd6bc8f02, 0x9415937963352c94, 0xa762cc0e9f7ad84a],
    [0xb6d6743235dc894d, 0xe5eebec22a924004, 0x971e012948607113],
];

/// llama.cpp's dot results (f32 bits) per type, length and repetition.
pub(super) const DOTS: [(&str, [[u32; 6]; 4]); 11] = [
    (
        "Q4_0",
        [
            [
                0x3e58d0d2, 0x3d9ea876, 0xbf14f362, 0x3cf7955a, 0x41d1b670, 0xbdb9f6c3,
            ],
            [
                0xc21df489, 0xc0727698, 0xbedd5d0e, 0xc0305b56, 0x4213f6f0, 0xc235e3b4,
            ],
            [
                0x41ad0dca, 0x40e94d54, 0xc222d826, 0xc2a521e3, 0xbbcc1800, 0x40d4ef72,
            ],
            [
                0x41dcd8e8, 0x431983bd, 0x42f4fde5, 0x430d602c, 0x4306c9f6, 0x42479296,
            ],
        ],
    ),
    (
        "Q4_1",
        [
            [
                0x3f2d7217, 0xc117b1b0, 0x41c58c75, 0xbf069cb5, 0xbdfd5440, 0xbee51055,
            ],
            [
                0x406415ac, 0xc04121f0, 0x4243b32e, 0xc246bac4, 0xbfc937fd, 0x424f792e,
            ],
            [
                0x438ed306, 0x41c464ac, 0x43443c04, 0x439cebb1, 0xc389fae8, 0x42c72ea8,
            ],
            [
                0xc4acacaa, 0xc399ac14, 0xc42e74fd, 0x43e95bbf, 0xc4500b5e, 0x4363e21d,
            ],
        ],
    ),
    (
        "Q5_0",
        [
            [
                0x3f16d8f1, 0xc12c96ff, 0xbe330d58, 0xc256788d, 0x405f9d08, 0xbf4e560e,
            ],
            [
                0x4202de19, 0xc136207f, 0xc2504eb0, 0xc2737602, 0xc2b6366a, 0xc02fdd6a,
            ],
            [
                0xc217c6bc, 0xc0afbed4, 0xc31cab3c, 0x41328c34, 0xc24d1e1c, 0xc2548f48,
            ],
            [
                0xc3378839, 0x42ecd60c, 0xc25ba18a, 0xc2d9ee44, 0x4315ea0a, 0xc3944d46,
            ],
        ],
    ),
    (
        "Q5_1",
        [
            [
                0xc2fa85a4, 0xc1f1b19a, 0xbf937f2b, 0xc2033ca8, 0x3f3cce61, 0xbdd0cfde,
            ],
            [
                0x41fc9517, 0xc1e7e77e, 0xc1876db8, 0xc3543736, 0xc21be086, 0x40962738,
            ],
            [
                0xc2132764, 0xc2ab3be8, 0xc2b62232, 0x41ff371e, 0x42b43136, 0xc385e12e,
            ],
            [
                0x42283bd8, 0xc474604c, 0xc2c2188c, 0x4114f8b8, 0xc338eefa, 0x4481d2e0,
            ],
        ],
    ),
    (
        "Q8_0",
        [
            [
                0x430f479b, 0x41fdd048, 0x3ef8071f, 0xc1866cd2, 0x41c9b3f2, 0xc15aab5a,
            ],
            [
                0xc2cfbd22, 0xc2aafbf8, 0xc3928140, 0xc0ca8350, 0xc33831c3, 0xc44d764b,
            ],
            [
                0xc4454986, 0xc4526a33, 0x43e9493a, 0x445130b0, 0xc3721ab2, 0x44aa4e52,
            ],
            [
                0xc53be032, 0xc548177e, 0x44116c39, 0xc3fbed20, 0xc490bce6, 0xc40826f4,
            ],
        ],
    ),
    (
        "IQ4NL",
        [
            [
                0x3d314252, 0x3d63e027, 0x3ecbecf1, 0x416f5823, 0xc10229fa, 0x4134f021,
            ],
            [
                0x4358b576, 0x410065d8, 0x43811d06, 0x435ee024, 0x4176ddd6, 0x42a93944,
            ],
            [
                0xc1a7eb56, 0x43941a97, 0x43ec8aa4, 0x44e0cf82, 0x438b6810, 0xc39abd7c,
            ],
            [
                0xc4aeeaaa, 0xc5045838, 0x445b551e, 0xc4c7fab2, 0x4529c68b, 0xc52703f9,
            ],
        ],
    ),
    (
        "Q2K",
        [
            [
                0x41bc35a0, 0xc3ba2710, 0x41a545a8, 0xc1f82b60, 0x420bfaa8, 0xc11323f8,
            ],
            [
                0x419708bc, 0x4410e44c, 0x444c8090, 0xc38ca37c, 0x456ed57d, 0xc023d67c,
            ],
            [
                0xc3b1be0c, 0x445570ba, 0x45739eda, 0xc5089970, 0x4301cba9, 0x42ce8fc6,
            ],
            [
                0xc52dc354, 0xc58a7e95, 0xc57e4ecd, 0xc5935855, 0x447a17b8, 0x4468963a,
            ],
        ],
    ),
    (
        "Q3K",
        [
            [
                0x439fc258, 0xc0844329, 0xc0cf2886, 0x418be7ad, 0x3fbab399, 0xc48beb44,
            ],
            [
                0x41fc1b18, 0xc36567ba, 0xc2161295, 0x428f5588, 0xc3953031, 0xc2d3849f,
            ],
            [
                0xc414b554, 0x444480d6, 0x444ad9d0, 0x404cbf60, 0xc1a3662e, 0xc40b1c2a,
            ],
            [
                0x431a2184, 0xc4481138, 0xc3b47f28, 0xc4cd975a, 0xc4d5ba4e, 0x443168a6,
            ],
        ],
    ),
    (
        "Q4K",
        [
            [
                0xc23e3570, 0xc2f5318c, 0xc2066e77, 0x44b29df6, 0x42ba29dd, 0x418acfe8,
            ],
            [
                0x4507bcf3, 0x4534f684, 0xc51fc110, 0xc5932900, 0xc5683e8c, 0xc5e8c8b8,
            ],
            [
                0x45bc6f4e, 0xc60353e9, 0x456d2096, 0x468b45db, 0x46c0d1d5, 0x4636e8ca,
            ],
            [
                0xc6b05807, 0xc6aae58b, 0xc55b75ad, 0x45e4bd40, 0xc6365b4e, 0xc6f1e0d4,
            ],
        ],
    ),
    (
        "Q5K",
        [
            [
                0xc27d5180, 0xc326165e, 0xc4a9a86b, 0xc554d2fa, 0x43bb47a4, 0x435e0d12,
            ],
            [
                0xc5624ff8, 0x45f1024e, 0xc68626a1, 0x456a5708, 0xc55753c2, 0xc3005385,
            ],
            [
                0xc610aee6, 0x463c60eb, 0x463c0764, 0x45fb89c8, 0x468ce2ea, 0xc6a4d468,
            ],
            [
                0x45bd36c8, 0x4690e420, 0x46685dcd, 0x4609c614, 0x4600f3eb, 0x45a5ec52,
            ],
        ],
    ),
    (
        "Q6K",
        [
            [
                0x436a1f24, 0xc4913a95, 0xc527b3d2, 0x428b87e2, 0x45c9684c, 0xc5299d12,
            ],
            [
                0x462622a4, 0x4317fcb0, 0x44f14680, 0x44b43c60, 0x4400a8c8, 0xc527cda4,
            ],
            [
                0xc6860ad6, 0xc15e3b98, 0xc6418e73, 0x45b28b54, 0x46f17213, 0x463103c8,
            ],
            [
                0x4580093a, 0xc6198524, 0xc5f3fdc2, 0x4710715b, 0x46e44e98, 0xc7d3e0bf,
            ],
        ],
    ),
];
