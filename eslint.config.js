// ESLint (flat config) for the TypeScript library and its JavaScript scripts; `npm run lint` runs it.
// Type-aware: the rules that catch a forgotten await on the native engine's async jobs (a training step, a
// save) need the types, so every linted file belongs to tsconfig.eslint.json (tsconfig.json + tests + JS).
// Formatting is prettier's job: eslint-config-prettier comes last and turns off the rules it would fight.
'use strict';
const js = require('@eslint/js');
const { defineConfig } = require('eslint/config');
const globals = require('globals');
const tseslint = require('typescript-eslint');
const prettier = require('eslint-config-prettier');

const anyOff = Object.fromEntries(
  ['no-unsafe-argument', 'no-unsafe-assignment', 'no-unsafe-call', 'no-unsafe-member-access', 'no-unsafe-return'].map((r) => [
    `@typescript-eslint/${r}`,
    'off',
  ]),
);

module.exports = defineConfig(
  {
    // Build outputs, downloaded data and environments (also in .gitignore); the fixtures are data written by an old version.
    ignores: ['dist/', 'build/', 'data/', 'runs/', 'coverage/', '.venv*/', '.gpu-check/', 'node_modules/', 'test/fixtures/*/', 'docs/api/'],
  },
  js.configs.recommended,
  tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: __dirname },
      globals: { ...globals.node },
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // The native engine's jobs are promises: one not awaited loses its error and races the next job on the model.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // An async function without await is how this code hands a promise to an API that wants one (fastify handlers, batcher callbacks).
      '@typescript-eslint/require-await': 'off',
      // `const { numLabels: _old, ...body } = x` is the idiom for dropping a field.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
    },
  },
  {
    // Plain CommonJS scripts (build, CI, jest config): require() is how they load modules.
    files: ['**/*.js'],
    languageOptions: { sourceType: 'commonjs' },
    rules: {
      '@typescript-eslint/no-require-imports': 'off',
      // The parser declares the DOM lib's names (crypto, Transformer) as globals; a CommonJS module's const shadows them.
      'no-redeclare': ['error', { builtinGlobals: false }],
      // Untyped JavaScript: every require()d value is `any`, so these would flag every line that uses one.
      ...anyOff,
    },
  },
  {
    // Tests pass ill-typed values on purpose and read JSON answers loosely; the assertions are the checks.
    files: ['test/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off', ...anyOff },
  },
  prettier,
);
