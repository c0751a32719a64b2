# One image for the bot, the agent and the CRM simulator; the command picks the process:
#   docker run … setup npm run bot     (default)
#   docker run … setup npm run agent
#   docker run … setup npm run sim     (demo only)
# The code runs from TypeScript source through tsx, which is a production dependency, so
# `npm ci --omit=dev` is enough. --ignore-scripts: nothing needs an install script at run time
# (esbuild ships its binary as an optional package; msgpackr-extract and dtrace-provider are
# optional native extras; botbuilder-dialogs' postinstall only runs `npx rimraf` on its own files).
FROM node:20-slim

ENV NODE_ENV=production \
    NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

WORKDIR /app

COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force

COPY tsconfig.json ./
COPY core ./core
COPY jobs ./jobs
COPY bot ./bot
COPY agent ./agent
COPY sim ./sim

USER node
EXPOSE 3978
# npm forwards SIGTERM to the process, which closes its worker and Redis connection cleanly.
CMD ["npm", "run", "bot"]
