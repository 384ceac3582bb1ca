/**
 * Upper critical values of the chi-square distribution at significance 0.001 (a correct sampler fails
 * one run in a thousand), from the standard tables; larger degrees of freedom use the Wilson–Hilferty
 * approximation.
 */
const TABLE_0_001 = [
  Number.NaN,
  10.828,
  13.816,
  16.266,
  18.467,
  20.515,
  22.458,
  24.322,
  26.124,
  27.877,
  29.588,
  31.264,
  32.909,
  34.528,
  36.123,
  37.697,
  39.252,
  40.79,
  42.312,
  43.82,
  45.315,
];

export function chiSquareCritical(dof: number): number {
  if (dof < 1) throw new RangeError(`dof ${dof}`);
  if (dof < TABLE_0_001.length) return TABLE_0_001[dof];
  const z = 3.090232; // standard normal quantile at 0.999
  const a = 2 / (9 * dof);
  return dof * (1 - a + z * Math.sqrt(a)) ** 3;
}
