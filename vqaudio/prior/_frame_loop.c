/* A frame prior's token loop, a frame per call, in plain C: the temporal step of the frame just
   drawn, and the next frame's depth transformer, sampled token by token.

   The frame prior (frames.py, frame_stream.py) runs its depth transformer once per token: 12 tokens a frame,
   4500 for 30 s. In PyTorch each step is ~60 small ops on vectors of 128 numbers, and at batch 1
   the per-op dispatch, not the arithmetic, is what a token costs (~0.8 ms). Here a whole frame
   -- the depth steps, the copy and cache logits and the sampler -- is one call: the same
   arithmetic as FrameStream._depth_step and sampling.sample_next, in float32, with the
   inverse-CDF draw of sampling.draw (a uniform number per token, drawn by the caller from the
   row's torch generator, so seeds work as before).

   Matrices are stored transposed (in, out) so every matrix-vector product is a sum of scaled
   rows, which the compiler vectorises without reordering any sum. Loaded with ctypes
   (frame_loop.py); no Python API. */

/* Each entry point is compiled twice, for x86-64-v3 (AVX2, FMA) and for the baseline, with
   every helper inlined into it (flatten), and the loader picks the one the processor runs. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define ENTRY __attribute__((flatten, target_clones("arch=x86-64-v3", "default")))
#else
#define ENTRY
#endif

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* a stack of pre-norm transformer blocks (transformer.Block), matrices transposed */
typedef struct {
    int32_t dim, heads, layers, ffn;
    const float *norm1_w, *norm1_b;      /* (L, dim) */
    const float *qkv;                    /* (L, dim, 3 dim), unrotated */
    const float *proj;                   /* (L, dim, dim) */
    const float *norm2_w, *norm2_b;      /* (L, dim) */
    const float *fc1, *fc1_b;            /* (L, dim, ffn), (L, ffn) */
    const float *fc2, *fc2_b;            /* (L, ffn, dim), (L, dim) */
    const float *norm_w, *norm_b;        /* (dim): the final LayerNorm */
    const float *rotation;               /* (positions, head_dim / 2, 2) cos, sin */
} Blocks;

/* where a position's keys and values go: cache + layer * layer + head * head + position * step
   floats, values at + values from the keys */
typedef struct {
    float *keys;
    int64_t values, layer, head, step;
} Cache;

typedef struct {
    Blocks blocks;
    int32_t per_block, codebook, gates;
    const float *tokens;                 /* (V + 1, dim) token embeddings, projected */
    const float *head;                   /* (levels, dim, codebook) transposed, per level */
    const float *gate_w, *gate_b;        /* (gates, dim), (gates): copy, then the cache's two */
    const int32_t *slot_level;           /* (per_block) */
} Depth;

/* the temporal step: the frame's token embeddings (per_block x width), projected, through the
   blocks at a window position */
typedef struct {
    Blocks blocks;
    int32_t per_block, width, context;
    const float *embedding;              /* (V + 1, width) */
    const float *frame_in, *frame_in_b;  /* (per_block width, dim) transposed, (dim) */
} Temporal;

typedef struct {
    const float *bias;        /* (per_block, dim): W h + b + slot embedding + earlier code */
    const int64_t *copy;      /* (per_block) index in the slot's codebook, or -1: no copy */
    const float *features;    /* (2, vocab) log(1 + counts), or NULL */
    int64_t vocab;
    float cache_scale;
    const float *temperature; /* (per_block) */
    const int32_t *top_k;     /* (per_block), 0: none */
    const float *top_p;       /* (per_block), >= 1: none */
    const int64_t *held;      /* (per_block) held index in the codebook, or -1 */
    const float *uniform;     /* (per_block) in [0, 1) */
    const float *offset;      /* (per_block, codebook) added to each slot's logits, or NULL */
    float hold_cap;           /* a held id's probability is at most this (>= 1: no cap) */
    int64_t start_id;
    int64_t *out;             /* (per_block) token ids */
    float *scratch;           /* depth_scratch_floats() floats */
} Frame;

int64_t depth_scratch_floats(const Depth *w) {
    int64_t d = w->blocks.dim, p = w->per_block;
    return 2 * w->blocks.layers * p * d /* k, v caches */ + 8 * d + w->blocks.ffn
           + 7 * (int64_t)w->codebook + 64 + p;
}

int64_t temporal_scratch_floats(const Temporal *w) {
    return 8 * (int64_t)w->blocks.dim + w->blocks.ffn + (int64_t)w->per_block * w->width
           + w->context + 64;
}

static void layer_norm(const float *x, const float *g, const float *b, float *y, int n) {
    float mean = 0.f, var = 0.f;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    float inv = 1.f / sqrtf(var + 1e-5f);
    for (int i = 0; i < n; i++) y[i] = (x[i] - mean) * inv * g[i] + b[i];
}

/* y (n_out) = x (n_in) @ wt (n_in, n_out) [+ bias]: a sum of scaled rows */
static void matvec(const float *restrict wt, const float *restrict x, const float *bias,
                   float *restrict y, int n_in, int n_out) {
    if (bias) memcpy(y, bias, sizeof(float) * n_out);
    else memset(y, 0, sizeof(float) * n_out);
    for (int j = 0; j < n_in; j++) {
        const float xj = x[j];
        const float *restrict row = wt + (int64_t)j * n_out;
        for (int i = 0; i < n_out; i++) y[i] += xj * row[i];
    }
}

static void rotate(float *x, const float *rot, int head_dim, int heads) {
    for (int h = 0; h < heads; h++) {
        float *v = x + h * head_dim;
        for (int i = 0; i < head_dim / 2; i++) {
            float a = v[2 * i], b = v[2 * i + 1], c = rot[2 * i], s = rot[2 * i + 1];
            v[2 * i] = a * c - b * s;
            v[2 * i + 1] = a * s + b * c;
        }
    }
}

/* float -> unsigned key that sorts as the float does (-inf lowest) */
static uint32_t order_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

/* the k-th largest of x (n), by bisection over the keys: ties count as the torch topk's do */
static float kth_largest(const float *x, int n, int k) {
    uint32_t lo = 0, hi = 0xFFFFFFFFu; /* answer key in [lo, hi] */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2 + 1;
        int count = 0;
        for (int i = 0; i < n; i++) count += order_key(x[i]) >= mid;
        if (count >= k) lo = mid;
        else hi = mid - 1;
    }
    for (int i = 0; i < n; i++)
        if (order_key(x[i]) == lo) return x[i];
    return -INFINITY;
}

/* softmax of x (n) into p (-inf -> 0) */
static void softmax(const float *x, float *p, int n) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) m = x[i] > m ? x[i] : m;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        p[i] = (x[i] == -INFINITY) ? 0.f : expf(x[i] - m);
        sum += p[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) p[i] *= inv;
}

/* logits (n) with all but the top-k, then all but the top-p nucleus, set to -inf
   (sampling._truncate): a token is dropped when the probability of the tokens above it
   already exceeds top_p. p (3 n) is scratch. */
static void truncate(float *logits, float *p, int n, int top_k, float top_p) {
    float *q = p + n;
    if (top_k > 0 && top_k < n) {
        float kth = kth_largest(logits, n, top_k);
        for (int i = 0; i < n; i++)
            if (logits[i] < kth) logits[i] = -INFINITY;
    }
    if (top_p < 1.f) {
        softmax(logits, p, n);
        /* keep the tokens whose probability is at least that of the smallest v with "mass
           above v" (the sum of the greater probabilities) <= top_p: bisection over the bit
           patterns of the probabilities (non-negative floats order as their bits), with the
           masses summed as integers in units of 2^-31 (exact, in any order: vectorised) */
        uint32_t *bits = (uint32_t *)q, *fixed = bits + n, hi = 0, lo = 0;
        for (int i = 0; i < n; i++) {
            memcpy(bits + i, p + i, 4);
            fixed[i] = (uint32_t)(p[i] * 2147483648.f);
            hi = bits[i] > hi ? bits[i] : hi;
        }
        const uint64_t limit = (uint64_t)((double)top_p * 2147483648.0);
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            uint64_t above = 0;
            for (int i = 0; i < n; i++) above += bits[i] > mid ? fixed[i] : 0u;
            if (above <= limit) hi = mid;
            else lo = mid + 1;
        }
        for (int i = 0; i < n; i++)
            if (bits[i] < lo) logits[i] = -INFINITY;
    }
}

/* the index drawn from probabilities p (n) with the uniform u: the first whose running sum
   exceeds u times the total (sampling.draw) */
static int64_t draw(const float *p, int n, float u) {
    double total = 0.0;
    for (int i = 0; i < n; i++) total += p[i];
    double target = (double)u * total, run = 0.0;
    int64_t last = -1;
    for (int i = 0; i < n; i++) {
        if (p[i] <= 0.f) continue;
        run += p[i];
        last = i;
        if (run > target) return i;
    }
    return last;
}

/* p (n): the probabilities sampling.sample_next draws from (temperature, exact hold and its
   cap, offset, top-k, top-p); logits and q are overwritten */
static void probabilities(float *logits, float *p, float *q, int n, float temperature,
                          int top_k, float top_p, int64_t held, const float *offset,
                          float hold_cap) {
    if (temperature != 1.f)
        for (int i = 0; i < n; i++) logits[i] /= temperature;
    int truncating = (top_k > 0 && top_k < n) || top_p < 1.f;
    if (held >= 0 && (truncating || offset || hold_cap < 1.f)) {
        softmax(logits, p, n);
        float p_held = p[held] < hold_cap ? p[held] : hold_cap;
        if (offset)
            for (int i = 0; i < n; i++) logits[i] += offset[i];
        logits[held] = -INFINITY;
        truncate(logits, q, n, top_k, top_p);
        softmax(logits, p, n);
        for (int i = 0; i < n; i++) p[i] *= (1.f - p_held);
        p[held] = p_held;
    } else {
        if (offset)
            for (int i = 0; i < n; i++) logits[i] += offset[i];
        truncate(logits, q, n, top_k, top_p);
        softmax(logits, p, n);
    }
}

/* x (dim) at window position pos through every block, its keys and values written to the
   cache at pos, attending to positions 0..pos; then the final LayerNorm into out (dim).
   scratch: 6 dim + ffn + pos + 1 floats. */
static void blocks_step(const Blocks *w, float *x, const Cache *c, int pos, float *out,
                        float *scratch) {
    const int d = w->dim, heads = w->heads, hd = d / heads, ffn = w->ffn;
    float *h = scratch, *qkv = h + d, *y = qkv + 3 * d, *t = y + d, *u = t + d, *att = u + ffn;
    const float scale = 1.f / sqrtf((float)hd);
    const float *rot = w->rotation + (int64_t)pos * hd;
    for (int l = 0; l < w->layers; l++) {
        layer_norm(x, w->norm1_w + l * d, w->norm1_b + l * d, h, d);
        matvec(w->qkv + (int64_t)l * d * 3 * d, h, NULL, qkv, d, 3 * d);
        rotate(qkv, rot, hd, heads);     /* queries */
        rotate(qkv + d, rot, hd, heads); /* keys */
        float *kl = c->keys + l * c->layer, *vl = kl + c->values;
        for (int hh = 0; hh < heads; hh++) {
            memcpy(kl + hh * c->head + pos * c->step, qkv + d + hh * hd, sizeof(float) * hd);
            memcpy(vl + hh * c->head + pos * c->step, qkv + 2 * d + hh * hd, sizeof(float) * hd);
        }
        for (int hh = 0; hh < heads; hh++) {
            const float *qh = qkv + hh * hd, *kh = kl + hh * c->head, *vh = vl + hh * c->head;
            float m = -INFINITY, sum = 0.f;
            for (int j = 0; j <= pos; j++) {
                const float *kj = kh + j * c->step;
                float dot = 0.f;
                for (int i = 0; i < hd; i++) dot += qh[i] * kj[i];
                att[j] = dot * scale;
                m = att[j] > m ? att[j] : m;
            }
            for (int j = 0; j <= pos; j++) {
                att[j] = expf(att[j] - m);
                sum += att[j];
            }
            float *yh = y + hh * hd;
            for (int i = 0; i < hd; i++) yh[i] = 0.f;
            for (int j = 0; j <= pos; j++) {
                const float a = att[j] / sum, *vj = vh + j * c->step;
                for (int i = 0; i < hd; i++) yh[i] += a * vj[i];
            }
        }
        matvec(w->proj + (int64_t)l * d * d, y, NULL, t, d, d);
        for (int i = 0; i < d; i++) x[i] += t[i];
        layer_norm(x, w->norm2_w + l * d, w->norm2_b + l * d, h, d);
        matvec(w->fc1 + (int64_t)l * d * ffn, h, w->fc1_b + (int64_t)l * ffn, u, d, ffn);
        for (int i = 0; i < ffn; i++) u[i] = 0.5f * u[i] * (1.f + erff(u[i] * 0.70710678f));
        matvec(w->fc2 + (int64_t)l * ffn * d, u, w->fc2_b + (int64_t)l * d, t, ffn, d);
        for (int i = 0; i < d; i++) x[i] += t[i];
    }
    layer_norm(x, w->norm_w, w->norm_b, out, d);
}

/* The temporal step of one row: the frame just completed (per_block ids) becomes the input at
   window position pos; its keys and values go to the cache; h (dim) is the normalised state. */
ENTRY int temporal_step(const Temporal *w, const int64_t *frame, const Cache *cache, int pos,
                  float *h, float *scratch) {
    const int d = w->blocks.dim, width = w->width, n = w->per_block * w->width;
    float *x = scratch, *in = x + d, *rest = in + n;
    for (int j = 0; j < w->per_block; j++)
        memcpy(in + j * width, w->embedding + frame[j] * width, sizeof(float) * width);
    matvec(w->frame_in, in, w->frame_in_b, x, n, d);
    blocks_step(&w->blocks, x, cache, pos, h, rest);
    return 0;
}

/* The layout of the structs above; frame_loop.py refuses a library built from another. */
int depth_abi(void) { return 3; }

/* The frame's tokens, slot 0 to per_block - 1, into f->out. Returns 0. */
ENTRY int depth_frame(const Depth *w, const Frame *f) {
    const int d = w->blocks.dim, P = w->per_block, size = w->codebook;
    float *s = f->scratch;
    Cache cache = {s, (int64_t)w->blocks.layers * P * d, (int64_t)P * d, w->blocks.dim / w->blocks.heads, d};
    s += 2 * (int64_t)w->blocks.layers * P * d;
    float *x = s; s += d;
    float *h = s; s += d;
    float *logits = s; s += size;
    float *p = s; s += size;
    float *q = s; s += 3 * size;
    float *rest = s;
    float gates[8];
    for (int slot = 0; slot < P; slot++) {
        int64_t prev = slot ? f->out[slot - 1] : f->start_id;
        const float *emb = w->tokens + prev * d, *bias = f->bias + (int64_t)slot * d;
        for (int i = 0; i < d; i++) x[i] = emb[i] + bias[i];
        blocks_step(&w->blocks, x, &cache, slot, h, rest);
        const int level = w->slot_level[slot];
        matvec(w->head + (int64_t)level * d * size, h, NULL, logits, d, size);
        for (int g = 0; g < w->gates; g++) {
            float acc = w->gate_b[g];
            for (int i = 0; i < d; i++) acc += w->gate_w[(int64_t)g * d + i] * h[i];
            gates[g] = acc;
        }
        if (f->copy[slot] >= 0) logits[f->copy[slot]] += gates[0];
        if (f->features && w->gates >= 3) { /* + g_all log(1 + count) + g_recent log(1 + recent) */
            const float *all = f->features + (int64_t)level * size;
            const float *recent = all + f->vocab;
            const float g_all = gates[1] * f->cache_scale, g_recent = gates[2] * f->cache_scale;
            for (int i = 0; i < size; i++) logits[i] += g_all * all[i] + g_recent * recent[i];
        }
        probabilities(logits, p, q, size, f->temperature[slot], f->top_k[slot], f->top_p[slot],
                      f->held[slot], f->offset ? f->offset + (int64_t)slot * size : NULL,
                      f->hold_cap);
        f->out[slot] = (int64_t)level * size + draw(p, size, f->uniform[slot]);
    }
    return 0;
}
