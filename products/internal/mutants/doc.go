// Package mutants holds the product side's mutation run, TestMutants: named
// one-line bugs in products/issuing and products/client, each of which the
// packages' own tests must catch. It has no code of its own.
package mutants
