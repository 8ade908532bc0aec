/**
 * Unit tests of the request layer and the rendering helpers (`jlpm test`). jsdom by
 * default; request tests run under node (`@jest-environment node`), where `fetch`
 * reaches the real HTTP server a test starts.
 */
module.exports = {
  testEnvironment: 'jsdom',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.spec.ts'],
  transform: {
    '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/tsconfig.test.json' }]
  }
};
