/* F16 and BF16 conversions against known encodings and, where the compiler has
 * it, the hardware/libgcc _Float16 conversion as an independent reference. */
#include "model/model.h"
#include "test.h"
#include <stdint.h>

static float bits_f(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static uint32_t f_bits(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }

int main(void) {
  static const struct { float f; uint16_t h; } f16[] = {
    {0.0f, 0x0000}, {-0.0f, 0x8000}, {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.5f, 0x3800},
    {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00}, {1e6f, 0x7c00}, {-1e6f, 0xfc00},
    {0.1f, 0x2e66}, {0.333333333f, 0x3555}, {6.103515625e-05f, 0x0400}, /* smallest normal */
    {5.960464477539063e-08f, 0x0001}, /* smallest subnormal */ {2.98023223876953125e-08f, 0x0000}, /* tie -> even 0 */
    {2.9802326e-08f, 0x0001}, {1.0009765625f, 0x3c01}, {1.00048828125f, 0x3c00}, /* tie -> even */
    {1.00146484375f, 0x3c02} /* tie -> even (up) */,
  };
  for (size_t i = 0; i < sizeof f16 / sizeof *f16; i++)
    CHECKF(ae__f32_to_f16(f16[i].f) == f16[i].h, "%g -> %04x, want %04x", (double)f16[i].f,
           ae__f32_to_f16(f16[i].f), f16[i].h);
  CHECK((ae__f32_to_f16(bits_f(0x7fc00000)) & 0x7fff) > 0x7c00);
  CHECK(ae__f32_to_f16(bits_f(0x7f800000)) == 0x7c00);
  /* every half value converts to float and back unchanged (NaNs stay NaN) */
  int bad = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    float f = ae__f16_to_f32((uint16_t)h);
    int nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    if (nan ? f == f : ae__f32_to_f16(f) != h) bad++;
  }
  CHECKF(bad == 0, "%d half values do not round-trip", bad);
  CHECK(ae__f16_to_f32(0x0001) == 5.960464477539063e-08f && ae__f16_to_f32(0x03ff) == 6.097555160522461e-05f);
#if defined(__FLT16_MAX__) && !defined(__clang__)
  /* independent reference: the compiler's conversion, over many floats */
  uint64_t x = 88172645463325252ull;
  int diff = 0;
  for (int i = 0; i < 2000000; i++) {
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    float f = bits_f((uint32_t)x);
    if (f != f) continue;
    _Float16 r = (_Float16)f;
    uint16_t rb;
    memcpy(&rb, &r, 2);
    diff += rb != ae__f32_to_f16(f);
    float g = ae__f16_to_f32(rb);
    diff += f_bits(g) != f_bits((float)r);
  }
  CHECKF(diff == 0, "%d conversions differ from _Float16", diff);
#else
  printf("SKIP: no _Float16 in this compiler: reference comparison not run\n");
#endif
  static const struct { uint32_t f; uint16_t h; } bf[] = {
    {0x3f800000, 0x3f80}, {0x3f808000, 0x3f80} /* tie -> even */, {0x3f818000, 0x3f82} /* tie -> even up */,
    {0x3f808001, 0x3f81}, {0xbf800000, 0xbf80}, {0x7f800000, 0x7f80}, {0x7f7fffff, 0x7f80} /* rounds to inf */,
    {0x00000001, 0x0000},
  };
  for (size_t i = 0; i < sizeof bf / sizeof *bf; i++)
    CHECKF(ae__f32_to_bf16(bits_f(bf[i].f)) == bf[i].h, "%08x -> %04x, want %04x", bf[i].f,
           ae__f32_to_bf16(bits_f(bf[i].f)), bf[i].h);
  uint16_t nb = ae__f32_to_bf16(bits_f(0x7f800001));
  CHECK((nb & 0x7f80) == 0x7f80 && (nb & 0x7f));
  CHECK(f_bits(ae__bf16_to_f32(0x3f82)) == 0x3f820000);
  TEST_DONE();
}
