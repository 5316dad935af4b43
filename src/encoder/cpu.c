/* Which instruction set the hand-written kernels use, chosen once per process.
 *
 * One binary runs on any x86-64 CPU: the kernels exist as AVX-512, AVX2+FMA and
 * portable-C tables (kernels_*.c, each AVX file compiled with its own -m flags),
 * and the first encoder load picks the best table the CPU has, the way oneDNN picks
 * its JIT kernels. libgcc's __builtin_cpu_supports reads CPUID once at startup and
 * also checks that the OS saves the wide registers (XCR0), so a feature counts only
 * when it can be used. On other architectures (arm64) the portable table is the only
 * one; the compiler vectorises it for the target.
 *
 * ASTEMBED_CPU=avx512|avx2|generic caps the choice (a cap above what the CPU has
 * changes nothing), for testing each path on one machine and for matching a slower
 * fleet. The cap also caps oneDNN (dnnl_set_max_cpu_isa: avx2 -> AVX2, generic ->
 * SSE4.1, oneDNN's lowest x86 level), so a capped run uses neither our wide kernels
 * nor oneDNN's; it must happen before oneDNN creates its first primitive, which is
 * why ae__encoder_new calls ae__cpu_select before anything else of oneDNN. bf16
 * GEMMs need oneDNN's AVX-512 kernels, so they fail (with their own error) below the
 * avx512 path. */
#include "encoder/encoder.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const k_path_names[AE__CPU_PATHS] = {"generic", "avx2", "avx512"};

const ae__kernels *ae__kernels_for(int path) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (path == AE__CPU_AVX512)
    return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")
               ? &ae__kernels_avx512 : NULL;
  if (path == AE__CPU_AVX2) return avx2 ? &ae__kernels_avx2 : NULL;
#endif
  return path == AE__CPU_GENERIC ? &ae__kernels_generic : NULL;
}

static struct {
  pthread_once_t once;
  const ae__kernels *k;
  int bad_env;            /* ASTEMBED_CPU holds an unknown value */
  int dnnl_status;        /* dnnl_set_max_cpu_isa's, when it was called */
  char env[32];
} g_cpu = {.once = PTHREAD_ONCE_INIT};

static void choose(void) {
  const char *env = getenv("ASTEMBED_CPU");
  int cap = AE__CPU_PATHS - 1;
  if (env && *env) {
    snprintf(g_cpu.env, sizeof g_cpu.env, "%s", env);
    for (cap = AE__CPU_PATHS - 1; cap >= 0 && strcmp(env, k_path_names[cap]); cap--) {}
    if (cap < 0) {
      g_cpu.bad_env = 1;
      g_cpu.k = &ae__kernels_generic;
      return;
    }
  }
  int path = cap;
  while (!ae__kernels_for(path)) path--;   /* generic always exists */
  g_cpu.k = ae__kernels_for(path);
#if defined(__x86_64__)
  if (path < AE__CPU_AVX512 && ae__kernels_for(path + 1))   /* capped below the CPU's best */
    g_cpu.dnnl_status = dnnl_set_max_cpu_isa(path == AE__CPU_AVX2 ? dnnl_cpu_isa_avx2
                                                                  : dnnl_cpu_isa_sse41);
#endif
}

int ae__cpu_select(void) {
  pthread_once(&g_cpu.once, choose);
  if (g_cpu.bad_env)
    return ae__error(AE_EINVAL, "ASTEMBED_CPU: unknown value '%s' (avx512, avx2 or generic)",
                     g_cpu.env);
  if (g_cpu.dnnl_status != dnnl_success)
    return ae__error(AE_EUNSUPPORTED, "ASTEMBED_CPU=%s: oneDNN refused the ISA cap (status %d; "
                     "it must be set before oneDNN's first use)", g_cpu.env, g_cpu.dnnl_status);
  return AE_OK;
}

const ae__kernels *ae__kernels_active(void) {
  pthread_once(&g_cpu.once, choose);
  return g_cpu.k;
}

const char *ae_cpu_path(void) {
  return ae__cpu_select() ? NULL : ae__kernels_active()->name;
}
