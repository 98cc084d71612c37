// Runs joulebench's CUDA kernels, unchanged, on the host through emu.h and
// checks them against plain double-precision references: the bias +
// activation epilogue (forward, masked gradient, bias gradient over several
// row slices), the softmax cross-entropy (row losses, mean, gradient; u32
// and i64 labels; a label out of range gives NaN), the multi-tensor AdamW
// (five tensors, one empty, three steps) and every kernel's `fault` switch.
// f32 and bf16. Prints a table and exits 1 if any check fails.
//
//   c++ -std=c++20 -O1 -pthread -I tools/cuda-emu/include tools/cuda-emu/check.cpp
// (tests/cuda_emulated.rs builds and runs it).
#include "emu.h"

#include "../../src/ops/cuda/kernels.cu"
#include "../../src/train/cuda/kernels.cu"

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

static int failures = 0;

// Records one check: the largest error against its tolerance.
static void report(const std::string &kernel, const std::string &what, double err, double tol) {
    bool ok = err <= tol;  // NaN fails
    if (!ok) failures++;
    std::printf("| %-22s | %-44s | %9.2e | %7.0e | %s |\n", kernel.c_str(), what.c_str(), err, tol,
                ok ? "ok" : "FAIL");
}

static double rel(double got, double want) {
    return std::fabs(got - want) / std::fmax(std::fabs(want), 1e-3);
}

static std::vector<float> normals(size_t n, unsigned seed, float scale = 1.0f) {
    std::mt19937 g(seed);
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (auto &x : v) x = d(g);
    return v;
}

// Values as the kernels' element type, and back.
template <typename T> struct Elem;
template <> struct Elem<float> {
    static float from(float v) { return v; }
    static float to(float v) { return v; }
    static const char *name() { return "f32"; }
};
template <> struct Elem<__nv_bfloat16> {
    static __nv_bfloat16 from(float v) { return __float2bfloat16(v); }
    static float to(__nv_bfloat16 v) { return __bfloat162float(v); }
    static const char *name() { return "bf16"; }
};
template <typename T> static std::vector<T> as(const std::vector<float> &v) {
    std::vector<T> out;
    for (float x : v) out.push_back(Elem<T>::from(x));
    return out;
}
template <typename T> static std::vector<double> back(const std::vector<T> &v) {
    std::vector<double> out;
    for (auto x : v) out.push_back(Elem<T>::to(x));
    return out;
}
static double max_rel(const std::vector<double> &got, const std::vector<double> &want) {
    double m = 0;
    for (size_t i = 0; i < got.size(); i++) m = std::fmax(m, rel(got[i], want[i]));
    if (got.size() != want.size()) return INFINITY;
    return m;
}

static dim3 grid_stride(unsigned long long n) {
    unsigned long long b = (n + 255) / 256;
    return dim3{(unsigned)(b < 1 ? 1 : (b > 8192 ? 8192 : b)), 1, 1};
}

// ---- bias + activation -------------------------------------------------

template <typename T>
static void bias_act_case(unsigned long long rows, unsigned cols, int relu, unsigned long long slices,
                          double tol) {
    auto zf = normals(rows * cols, 1), bf = normals(cols, 2), gf = normals(rows * cols, 3);
    auto z = as<T>(zf), b = as<T>(bf), g = as<T>(gf);
    std::vector<T> y(rows * cols);
    auto fwd = [&](int fault) {
        emu::launch(grid_stride(rows * cols), dim3{256, 1, 1}, [&] {
            if constexpr (sizeof(T) == 4)
                joulebench_bias_act_f32(z.data(), b.data(), y.data(), rows, cols, relu, fault);
            else
                joulebench_bias_act_bf16(z.data(), b.data(), y.data(), rows, cols, relu, fault);
        });
    };
    fwd(0);
    // The reference on the same (rounded) inputs, rounded once to T.
    std::vector<double> want(rows * cols);
    auto zd = back(z), bd = back(b), gd = back(g);
    for (size_t i = 0; i < want.size(); i++) {
        double v = zd[i] + bd[i % cols];
        if (relu) v = std::fmax(v, 0.0);
        want[i] = Elem<T>::to(Elem<T>::from((float)v));
    }
    std::string what = std::string(Elem<T>::name()) + " " + std::to_string(rows) + "x" +
                       std::to_string(cols) + (relu ? " relu" : " identity");
    report("bias-act", what + " forward", max_rel(back(y), want), tol);
    fwd(1);
    report("bias-act", what + " fault moves y[0] by 1",
           std::fabs(std::fabs(Elem<T>::to(y[0]) - want[0]) - 1.0), 0.02);
    fwd(0);

    // Backward: masked gradient and the bias gradient over `slices` slices.
    unsigned long long per = (rows + slices - 1) / slices;
    std::vector<T> gz(rows * cols, Elem<T>::from(-7.0f)), db(cols);
    std::vector<float> partial(slices * cols, NAN);
    emu::launch(dim3{(cols + 31) / 32, (unsigned)slices, 1}, dim3{32, 8, 1}, [&] {
        if constexpr (sizeof(T) == 4)
            joulebench_bias_act_bwd_f32(g.data(), y.data(), relu ? gz.data() : nullptr, partial.data(),
                                        rows, cols, per, relu);
        else
            joulebench_bias_act_bwd_bf16(g.data(), y.data(), relu ? gz.data() : nullptr, partial.data(),
                                         rows, cols, per, relu);
    });
    auto total = [&](int fault) {
        emu::launch(grid_stride(cols), dim3{256, 1, 1}, [&] {
            if constexpr (sizeof(T) == 4)
                joulebench_column_total_f32(partial.data(), db.data(), slices, cols, fault);
            else
                joulebench_column_total_bf16(partial.data(), db.data(), slices, cols, fault);
        });
    };
    total(0);
    std::vector<double> want_gz(rows * cols), want_db(cols, 0.0);
    auto yd = back(y);
    for (size_t i = 0; i < want_gz.size(); i++) {
        double v = (relu && yd[i] <= 0.0) ? 0.0 : gd[i];
        want_gz[i] = v;
        want_db[i % cols] += v;
    }
    for (auto &v : want_db) v = Elem<T>::to(Elem<T>::from((float)v));
    if (relu) report("bias-act", what + " masked gradient", max_rel(back(gz), want_gz), tol);
    else report("bias-act", what + " gradient left unwritten", rel(back(gz)[0], -7.0), 0.0);
    report("bias-act", what + ", " + std::to_string(slices) + " slices: bias gradient",
           max_rel(back(db), want_db), tol);
    total(1);
    report("bias-act", what + " fault moves db[0] by 1",
           std::fabs(std::fabs(Elem<T>::to(db[0]) - want_db[0]) - 1.0), 0.02 * (1 + std::fabs(want_db[0])));
}

// ---- cross-entropy -------------------------------------------------------

template <typename T, typename L>
static void ce_case(unsigned rows, unsigned cols, const char *lname, double tol) {
    auto x = as<T>(normals((size_t)rows * cols, 5, 3.0f));
    std::vector<L> labels(rows);
    for (unsigned r = 0; r < rows; r++) labels[r] = (L)((r * 7 + 3) % cols);
    auto xd = back(x);
    std::vector<double> want_rows(rows), want_d((size_t)rows * cols);
    double want_mean = 0, g = 0.75;
    for (unsigned r = 0; r < rows; r++) {
        double m = -INFINITY, s = 0;
        for (unsigned j = 0; j < cols; j++) m = std::fmax(m, xd[r * cols + j]);
        for (unsigned j = 0; j < cols; j++) s += std::exp(xd[r * cols + j] - m);
        double lse = m + std::log(s);
        want_rows[r] = lse - xd[r * cols + labels[r]];
        want_mean += want_rows[r] / rows;
        for (unsigned j = 0; j < cols; j++) {
            double p = std::exp(xd[r * cols + j] - lse) * g / rows;
            if (j == (unsigned)labels[r]) p -= g / rows;
            want_d[r * cols + j] = Elem<T>::to(Elem<T>::from((float)p));
        }
    }
    std::vector<float> loss(rows), out(1);
    dim3 warps{(rows + 7) / 8, 1, 1};
    auto forward = [&](int fault) {
        emu::launch(warps, dim3{256, 1, 1}, [&] {
            if constexpr (sizeof(T) == 4 && sizeof(L) == 4)
                joulebench_ce_rows_f32_u32(x.data(), labels.data(), loss.data(), rows, cols);
            else if constexpr (sizeof(T) == 4)
                joulebench_ce_rows_f32_i64(x.data(), labels.data(), loss.data(), rows, cols);
            else if constexpr (sizeof(L) == 4)
                joulebench_ce_rows_bf16_u32(x.data(), labels.data(), loss.data(), rows, cols);
            else
                joulebench_ce_rows_bf16_i64(x.data(), labels.data(), loss.data(), rows, cols);
        });
        emu::launch(dim3{1, 1, 1}, dim3{256, 1, 1},
                    [&] { joulebench_ce_mean(loss.data(), out.data(), rows, fault); });
    };
    std::string what = std::string(Elem<T>::name()) + " " + lname + " " + std::to_string(rows) + "x" +
                       std::to_string(cols);
    forward(0);
    std::vector<double> got_rows(loss.begin(), loss.end());
    report("cross-entropy", what + " row losses", max_rel(got_rows, want_rows), 1e-5);
    report("cross-entropy", what + " mean", rel(out[0], want_mean), 1e-5);
    forward(1);
    report("cross-entropy", what + " fault moves the mean by 1", std::fabs(out[0] - want_mean - 1.0), 1e-4);
    std::vector<T> d((size_t)rows * cols);
    float gs = (float)g;
    auto grad = [&](int fault) {
        emu::launch(warps, dim3{256, 1, 1}, [&] {
            if constexpr (sizeof(T) == 4 && sizeof(L) == 4)
                joulebench_ce_grad_f32_u32(x.data(), labels.data(), &gs, d.data(), rows, cols, fault);
            else if constexpr (sizeof(T) == 4)
                joulebench_ce_grad_f32_i64(x.data(), labels.data(), &gs, d.data(), rows, cols, fault);
            else if constexpr (sizeof(L) == 4)
                joulebench_ce_grad_bf16_u32(x.data(), labels.data(), &gs, d.data(), rows, cols, fault);
            else
                joulebench_ce_grad_bf16_i64(x.data(), labels.data(), &gs, d.data(), rows, cols, fault);
        });
    };
    grad(0);
    report("cross-entropy", what + " gradient", max_rel(back(d), want_d), tol);
    grad(1);
    report("cross-entropy", what + " fault moves d[0] by 1",
           std::fabs(std::fabs(Elem<T>::to(d[0]) - want_d[0]) - 1.0), 0.02);
    // A label outside 0..cols: that row's loss (and so the mean) is NaN.
    labels[rows / 2] = (L)cols;
    forward(0);
    report("cross-entropy", what + " bad label gives a NaN loss",
           std::isnan(loss[rows / 2]) && std::isnan(out[0]) ? 0.0 : 1.0, 0.0);
}

// ---- multi-tensor AdamW --------------------------------------------------

static void adamw_case() {
    const std::vector<size_t> sizes = {1000, 1, 0, 300, 4099};
    double lr = 0.01, wd = 0.1, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    std::vector<std::vector<float>> w, g;
    std::vector<std::vector<double>> rw, rm, rv;
    size_t total = 0;
    for (size_t k = 0; k < sizes.size(); k++) {
        w.push_back(normals(sizes[k], 10 + k));
        rw.emplace_back(w.back().begin(), w.back().end());
        rm.emplace_back(sizes[k], 0.0);
        rv.emplace_back(sizes[k], 0.0);
        total += sizes[k];
    }
    std::vector<float> m(total, 0.0f), v(total, 0.0f);
    double worst = 0;
    for (int t = 1; t <= 3; t++) {
        g.clear();
        for (size_t k = 0; k < sizes.size(); k++) g.push_back(normals(sizes[k], 100 * t + k));
        // The table as src/train/cuda/mod.rs (launch_table) builds it.
        std::vector<unsigned long long> wp, gp, mo, start;
        unsigned long long off = 0, run = 0;
        for (size_t k = 0; k < sizes.size(); k++) {
            wp.push_back((unsigned long long)(uintptr_t)w[k].data());
            gp.push_back((unsigned long long)(uintptr_t)g[k].data());
            mo.push_back(off);
            start.push_back(run);
            off += sizes[k];
            run += sizes[k];
        }
        start.push_back(run);
        std::vector<unsigned long long> table = wp;
        table.insert(table.end(), gp.begin(), gp.end());
        table.insert(table.end(), mo.begin(), mo.end());
        table.insert(table.end(), start.begin(), start.end());
        float sm = 1.0 / (1.0 - std::pow(b1, t)), sv = 1.0 / (1.0 - std::pow(b2, t));
        emu::launch(grid_stride(run), dim3{256, 1, 1}, [&] {
            joulebench_adamw_multi(table.data(), (int)sizes.size(), m.data(), v.data(), run,
                                   (float)(1.0 - lr * wd), b1, b2, (float)(1 - b1), (float)(1 - b2), sm, sv,
                                   lr, eps, 0);
        });
        for (size_t k = 0; k < sizes.size(); k++)
            for (size_t i = 0; i < sizes[k]; i++) {
                double gi = g[k][i];
                rm[k][i] = b1 * rm[k][i] + (1 - b1) * gi;
                rv[k][i] = b2 * rv[k][i] + (1 - b2) * gi * gi;
                rw[k][i] = rw[k][i] * (1 - lr * wd) -
                           lr * (rm[k][i] / (1 - std::pow(b1, t))) /
                               (std::sqrt(rv[k][i] / (1 - std::pow(b2, t))) + eps);
            }
    }
    for (size_t k = 0; k < sizes.size(); k++)
        for (size_t i = 0; i < sizes[k]; i++) worst = std::fmax(worst, rel(w[k][i], rw[k][i]));
    report("adamw-multi", "5 tensors (1000, 1, 0, 300, 4099), 3 steps", worst, 1e-5);
    // The fault: only the first weight of the first tensor moves, by 1.
    std::vector<float> a = {0.5f, -0.25f}, ga = {0.1f, 0.2f}, ma(2), va(2);
    auto step = [&](std::vector<float> &wv, int fault) {
        std::fill(ma.begin(), ma.end(), 0.0f);
        std::fill(va.begin(), va.end(), 0.0f);
        std::vector<unsigned long long> table = {(unsigned long long)(uintptr_t)wv.data(),
                                                 (unsigned long long)(uintptr_t)ga.data(), 0, 0, 2};
        emu::launch(dim3{1, 1, 1}, dim3{256, 1, 1}, [&] {
            joulebench_adamw_multi(table.data(), 1, ma.data(), va.data(), 2, 1.0f, 0.9f, 0.999f, 0.1f,
                                   0.001f, 10.0f, 1000.0f, 0.01f, 1e-8f, fault);
        });
    };
    std::vector<float> clean = a, bad = a;
    step(clean, 0);
    step(bad, 1);
    report("adamw-multi", "fault moves w[0] by 1 and nothing else",
           std::fabs(bad[0] - clean[0] - 1.0f) + std::fabs(bad[1] - clean[1]), 1e-6);
}

int main() {
    std::printf("| kernel | check | error | tolerance | |\n|---|---|---|---|---|\n");
    // f32: rounding of sums only; bf16: one rounding of an exact value (2^-9).
    bias_act_case<float>(300, 40, 1, 5, 1e-5);
    bias_act_case<float>(300, 40, 1, 1, 1e-5);
    bias_act_case<float>(10, 21, 0, 3, 1e-5);
    bias_act_case<__nv_bfloat16>(300, 40, 1, 5, 1e-2);
    bias_act_case<__nv_bfloat16>(64, 33, 0, 2, 1e-2);
    ce_case<float, unsigned int>(37, 10, "u32", 1e-5);
    ce_case<float, long long>(9, 100, "i64", 1e-5);
    ce_case<__nv_bfloat16, unsigned int>(37, 10, "u32", 1e-2);
    ce_case<__nv_bfloat16, long long>(20, 65, "i64", 1e-2);
    adamw_case();
    std::printf("%s: %d failed\n", failures ? "FAILED" : "all kernels agree", failures);
    return failures ? 1 : 0;
}
