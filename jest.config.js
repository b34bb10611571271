/** @type {import('jest').Config} */
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  transform: {
    '^.+\\.ts$': [
      'ts-jest',
      { tsconfig: { isolatedModules: true, strict: true, esModuleInterop: true, resolveJsonModule: true, lib: ['ES2022', 'DOM'] } },
    ],
  },
  // Native training saturates both cores: run suites one after another.
  maxWorkers: 1,
  testTimeout: 180000,
};
