// The node image's own code: a small Express service; settings come from the environment.
'use strict';
require('dotenv').config();
const express = require('express');
const helmet = require('helmet');
const { Pool } = require('pg');
const { S3Client, GetObjectCommand } = require('@aws-sdk/client-s3');
const jwt = require('jsonwebtoken');

const app = express();
const pool = new Pool({ connectionString: process.env.DATABASE_URL || 'postgres://app@db:5432/app' });
const s3 = new S3Client({ region: process.env.AWS_REGION || 'eu-west-1' });

app.use(helmet());
app.use(express.json());

app.get('/healthz', async (_req, res) => {
  await pool.query('SELECT 1');
  res.json({ status: 'ok' });
});

app.get('/files/:key', async (req, res) => {
  const auth = (req.headers.authorization || '').replace(/^Bearer /, '');
  try {
    jwt.verify(auth, process.env.JWT_PUBLIC_KEY, { algorithms: ['RS256'] });
  } catch (err) {
    return res.status(401).end();
  }
  const out = await s3.send(new GetObjectCommand({ Bucket: process.env.BUCKET || 'files', Key: req.params.key }));
  out.Body.pipe(res);
});

app.listen(Number(process.env.PORT || 3000));
